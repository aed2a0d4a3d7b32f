# Trade-off chart of the detection benchmark: own-region detection against false alerts per 100
# region-days (log axis), one panel per stream; curves for swept detectors, points for vigil's
# alert levels (black: the index's alerts; red triangles: the evidence alarms). Usage: Rscript plot.R curves.csv out.png
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$false_per_100 <- pmax(d$false_per_100, 0.001)
streams <- unique(d$stream)
level_re <- "^vigil-(evidence-)?(blue|yellow|orange|red)\\+$"
methods <- unique(d$method[!grepl(level_re, d$method)])
cols <- setNames(rep(c("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4"),
                     length.out = length(methods)), methods)
png(args[2], width = 520 * min(2, length(streams)), height = 420 * ceiling(length(streams) / 2), res = 96)
par(mfrow = c(ceiling(length(streams) / 2), min(2, length(streams))), mar = c(4.2, 4.2, 2.5, 1))
for (s in streams) {
  x <- d[d$stream == s, ]
  plot(NA, log = "x", xlim = c(0.001, 100), ylim = c(0, 1), xlab = "false alerts per 100 region-days",
       ylab = "surges detected in own region", main = s)
  abline(v = c(0.03, 0.1, 1, 5), col = "grey85", lty = 3)
  for (m in methods) {
    y <- x[x$method == m, ]
    if (nrow(y) == 0) next
    y <- y[order(y$false_per_100), ]
    lines(y$false_per_100, cummax(y$detection), type = "s", col = cols[[m]], lwd = 2)
  }
  lv <- x[grepl("^vigil-(blue|yellow|orange|red)\\+$", x$method), ]
  points(lv$false_per_100, lv$detection, pch = 19, col = "black")
  text(lv$false_per_100, lv$detection, sub("^vigil-", "", lv$method), pos = 4, cex = 0.7)
  ev <- x[grepl("^vigil-evidence-", x$method), ]
  points(ev$false_per_100, ev$detection, pch = 17, col = "#cf222e", cex = 1.3)
  text(ev$false_per_100, ev$detection, sub("^vigil-evidence-", "alarm ", ev$method), pos = 2, cex = 0.7, col = "#cf222e")
  legend("topleft", legend = methods, col = cols[methods], lwd = 2, cex = 0.7, bg = "white")
}
invisible(dev.off())
