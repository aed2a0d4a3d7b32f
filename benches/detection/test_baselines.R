# Self-check of baselines.R (Rscript benches/detection/test_baselines.R, from anywhere; about
# 10 s). One synthetic daily series (1,200 days of Poisson counts with a weekly pattern and a
# yearly wave) with a known one-day spike (three times the expected count) on day 1,150. It runs
# baselines.R end to end on it and asserts:
#   - every method's stat on the spike day is higher than on at least 95 % of the other days;
#   - ears_c1 / ears_c2 equal surveillance::earsC's C1 / C2 (solved from two upper bounds, as in
#     crates/score/tests/oracle/ears_cusum.R), and ears_c3 is the APL C3 of the C2 values
#     (also on the C3 caveat series of docs/methodology.md §7.1: 4.33 on its spike day);
#   - farrington equals farringtonFlexible (same control) on the middle day of every weekly block
#     with b >= 1;
#   - glm equals a glm() fit (formula interface) on the documented window for a few blocks;
#   - glrpois equals surveillance::glrnb on the sts with alpha = 0 and mu0 = glm's expected
#     counts; glrnb's per-block calls equal one whole-series call when alpha is constant.
# Prints "ok" at the end.

suppressPackageStartupMessages(library(surveillance))

file_arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
here <- if (length(file_arg) == 1) dirname(normalizePath(sub("^--file=", "", file_arg))) else "."
script <- file.path(here, "baselines.R")
stopifnot(file.exists(script))
B <- new.env()
sys.source(script, envir = B)  # defines the functions; main() only runs under Rscript
P <- B$P

# ------------------------------------------------------------------------------------------------
# The series, and an end-to-end run
# ------------------------------------------------------------------------------------------------
set.seed(20240607)
n <- 1200
dates <- seq(as.Date("2016-01-04"), by = "day", length.out = n)
lam <- 8 * c(0.85, 0.9, 0.95, 1, 1.05, 1.3, 0.95)[as.integer(format(dates, "%u"))] *
  (1 + 0.2 * sin(2 * pi * seq_len(n) / 365.25))
y <- rpois(n, lam)
spike <- 1150
y[spike] <- round(3 * lam[spike])

tmp <- tempfile("test_baselines")
dir.create(tmp)
infile <- file.path(tmp, "series.csv")
outfile <- file.path(tmp, "out.csv")
write.csv(data.frame(region = "r,1", category = "all", date = format(dates), count = y), infile,
          row.names = FALSE)
status <- system2(file.path(R.home("bin"), "Rscript"), c(script, infile, outfile, "--cores", "1"),
                  stdout = FALSE, stderr = file.path(tmp, "stderr.txt"))
if (status != 0) {
  cat(readLines(file.path(tmp, "stderr.txt")), sep = "\n")
  stop("baselines.R failed")
}
out <- read.csv(outfile, colClasses = c("character", "character", "character", "character", "numeric"),
                na.strings = character(0))
stopifnot(identical(names(out), c("method", "region", "category", "date", "stat")),
          all(out$region == "r,1"), all(out$category == "all"), all(is.finite(out$stat)))
stat_of <- function(method) {
  v <- rep(NA_real_, n)
  o <- out[out$method == method, ]
  v[as.integer(as.Date(o$date) - dates[1]) + 1L] <- o$stat
  v
}
methods <- c("ears_c1", "ears_c2", "ears_c3", "farrington", "glrnb", "glrpois", "glm")
stopifnot(setequal(unique(out$method), methods))
first_day <- c(ears_c1 = 8, ears_c2 = 10, ears_c3 = 12, farrington = 64, glrnb = 78, glrpois = 78,
               glm = 64)
for (m in methods) {
  v <- stat_of(m)
  stopifnot(which(!is.na(v))[1] == first_day[[m]], all(!is.na(v[first_day[[m]]:n])))
  other <- v[-spike]
  other <- other[!is.na(other)]
  frac <- mean(other < v[spike])
  cat(sprintf("%-10s spike-day stat %8.3f, above %.1f %% of the other days\n", m, v[spike], 100 * frac))
  stopifnot(frac >= 0.95)
}

# ------------------------------------------------------------------------------------------------
# EARS against earsC
# ------------------------------------------------------------------------------------------------
ears_oracle <- function(y, method, minSigma) {
  obj <- sts(observed = matrix(y, ncol = 1))
  r1 <- earsC(obj, control = list(method = method, alpha = 0.001, minSigma = minSigma))
  r2 <- earsC(obj, control = list(method = method, alpha = 0.025, minSigma = minSigma))
  ub1 <- as.vector(upperbound(r1))
  ub2 <- as.vector(upperbound(r2))
  sd <- (ub1 - ub2) / (qnorm(1 - 0.001) - qnorm(1 - 0.025))
  mean <- ub1 - qnorm(1 - 0.001) * sd
  v <- rep(NA_real_, length(y))
  v[r1@control$range] <- (y[r1@control$range] - mean) / sd
  v
}
for (m in c("C1", "C2")) {
  mine <- stat_of(paste0("ears_", tolower(m)))
  ref <- ears_oracle(y, m, P$min_sigma)
  stopifnot(identical(is.na(mine), is.na(ref)), isTRUE(all.equal(mine, ref, tolerance = 1e-9)))
}
c2 <- stat_of("ears_c2")
s <- pmax(0, c2 - 1)
st <- ifelse(s < 2, s, 0)
c3 <- c(NA, NA, s[3:n] + st[2:(n - 1)] + st[1:(n - 2)])
stopifnot(isTRUE(all.equal(stat_of("ears_c3"), c3, tolerance = 1e-9)))
caveat <- c(5, 5, 4, 6, 7, 5, 3, 6, 4, 5, 7, 12, 5, 4)
cv2 <- B$ears_c(caveat, "C2", 0)
stopifnot(isTRUE(all.equal(cv2, ears_oracle(caveat, "C2", 0))))
stopifnot(abs(B$ears_c3_apl(cv2)[12] - 4.33) < 0.005)

# ------------------------------------------------------------------------------------------------
# farrington against farringtonFlexible (one call per day: its range must be contiguous)
# ------------------------------------------------------------------------------------------------
far <- stat_of("farrington")
obj <- sts(observed = matrix(y, ncol = 1), epoch = as.numeric(dates), epochAsDate = TRUE,
           frequency = 365)
checked <- c(b1 = 0, b2 = 0, b3 = 0)
for (k0 in B$block_starts(n)) {
  m <- min(n, k0 + 3L)
  b <- B$far_b(dates, m)
  if (b < 1) next
  r <- farringtonFlexible(obj, control = list(
    range = m, b = b, w = P$far_w, noPeriods = P$far_noPeriods, populationOffset = FALSE,
    fitFun = "algo.farrington.fitGLM.flexible", reweight = TRUE, weightsThreshold = P$far_weights,
    pastWeeksNotIncluded = P$far_past, pThresholdTrend = P$far_pThresholdTrend, trend = TRUE,
    thresholdMethod = "nbPlugin", limit54 = P$far_limit54, alpha = 0.01, glmWarnings = FALSE))
  p <- r@control$pvalue[1, 1]
  ref <- if (is.na(upperbound(r)[1, 1])) 0 else -log10(p)  # limit54 rule not met: 0
  stopifnot(abs(far[m] - ref) < 1e-9 * max(1, abs(ref)))
  # stat >= -log10(alpha) is farringtonFlexible's alarm rule (here alpha = 0.01)
  stopifnot(alarms(r)[1, 1] == (far[m] >= 2))
  checked[b] <- checked[b] + 1
}
cat("farrington == farringtonFlexible on", sum(checked), "block middles (b = 1, 2, 3:",
    paste(checked, collapse = ", "), ")\n")
stopifnot(all(checked > 0))

# ------------------------------------------------------------------------------------------------
# glm against glm(), and the GLR detectors against glrnb on the sts
# ------------------------------------------------------------------------------------------------
g <- B$glm_method(y, dates)
stopifnot(isTRUE(all.equal(g$stat, stat_of("glm"), tolerance = 1e-9)))
for (k0 in c(64L, 498L, 1149L)) {
  tr <- max(1L, k0 - 371L):(k0 - 8L)
  d <- data.frame(y = y, t = seq_len(n) - k0, dow = factor(format(dates, "%u")))
  fit <- suppressWarnings(glm(y ~ t + dow, family = quasipoisson, data = d[tr, ]))
  phi <- summary(fit)$dispersion
  for (t in k0:(k0 + 6L)) {
    mu <- max(predict(fit, newdata = d[t, ], type = "response"), 0.5 / length(tr))
    p <- if (phi > 1) pnbinom(y[t] - 1, size = mu / (phi - 1), mu = mu, lower.tail = FALSE)
         else ppois(y[t] - 1, mu, lower.tail = FALSE)
    stopifnot(abs(g$stat[t] - (-log10(p))) < 1e-7, abs(g$mu[t] - mu) < 1e-8 * mu)
  }
}
a <- which(!is.na(g$mu))[1]
idx <- (a + P$glr_M):n
ref <- glrnb(sts(observed = matrix(y, ncol = 1)),
             control = list(range = a:n, c.ARL = 1e300, mu0 = g$mu[a:n], alpha = 0, M = P$glr_M,
                            Mtilde = 1, change = "intercept", dir = "inc", ret = "value"))
stopifnot(isTRUE(all.equal(stat_of("glrpois")[idx], as.vector(upperbound(ref))[idx - a + 1],
                           tolerance = 1e-9)))
v <- B$glrnb_method(y, g$mu, rep(0.05, n))
ref <- glrnb(sts(observed = matrix(y, ncol = 1)),
             control = list(range = a:n, c.ARL = 1e300, mu0 = g$mu[a:n], alpha = 0.05, M = P$glr_M,
                            Mtilde = 1, change = "intercept", dir = "inc", ret = "value"))
stopifnot(isTRUE(all.equal(v[idx], as.vector(upperbound(ref))[idx - a + 1], tolerance = 1e-12)))

unlink(tmp, recursive = TRUE)
cat("ok\n")
