# Oracle values for crates/score/tests/detectors_oracle.rs from the R package `surveillance`:
# `earsC` (methods C1 and C2 only; its C3 is not the APL definition, see docs/methodology.md §7.1),
# `algo.cusum` (standardised and raw-count CUSUMs) and `findK`/`getTheta1` (Poisson CUSUM
# reference value). Nothing here uses the Rust code under test.
#
# Run from the repository root:
#   Rscript crates/score/tests/oracle/ears_cusum.R
# Produced with R 4.2.2 Patched (2022-11-10 r83330) and surveillance 1.20.3, both from Debian
# bookworm (`apt-get install r-cran-surveillance`). The script prints Rust array literals that
# are pasted verbatim into the test file.

suppressPackageStartupMessages(library(surveillance))

num <- function(x) {
  s <- sprintf("%.17g", x)
  ifelse(grepl("[.eE]", s) | grepl("inf", s, ignore.case = TRUE), s, paste0(s, ".0"))
}
vec <- function(name, x) cat(sprintf("const %s: [f64; %d] = [%s];\n", name, length(x), paste(num(x), collapse = ", ")))
cat(sprintf("// R %s.%s, surveillance %s\n", R.version$major, R.version$minor, packageVersion("surveillance")))

# ---------------------------------------------------------------------------------------------
# EARS C1 / C2. earsC reports only the upper bound mean + z_alpha * max(sd, minSigma), so it is
# run at two alphas and the two bounds are solved for the baseline mean and (floored) sd.
# Rows: (day index, 1-based; upper bound at alpha = 0.001; mean; sd; (y - mean) / sd; alarm).
# ---------------------------------------------------------------------------------------------
ears_rows <- function(name, y, method, minSigma) {
  obj <- sts(observed = matrix(y, ncol = 1))
  r1 <- earsC(obj, control = list(method = method, alpha = 0.001, minSigma = minSigma))
  r2 <- earsC(obj, control = list(method = method, alpha = 0.025, minSigma = minSigma))
  ub1 <- as.vector(upperbound(r1))
  ub2 <- as.vector(upperbound(r2))
  z1 <- qnorm(1 - 0.001)
  z2 <- qnorm(1 - 0.025)
  sd <- (ub1 - ub2) / (z1 - z2)
  mean <- ub1 - z1 * sd
  range <- r1@control$range
  stat <- (y[range] - mean) / sd
  al <- as.vector(alarms(r1))
  cat(sprintf("const %s: &[(usize, f64, f64, f64, f64, bool)] = &[\n", name))
  for (i in seq_along(range)) {
    cat(sprintf("    (%d, %s, %s, %s, %s, %s),\n", range[i], num(ub1[i]), num(mean[i]), num(sd[i]),
                num(stat[i]), ifelse(al[i], "true", "false")))
  }
  cat("];\n")
}

ears_a <- c(3, 5, 2, 4, 6, 3, 4, 5, 2, 3, 4, 7, 5, 3, 9, 4, 6, 12, 5, 4)
ears_b <- c(2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 2, 2, 5, 2, 2, 2, 2, 2)
vec("EARS_A", ears_a)
vec("EARS_B", ears_b)
ears_rows("EARS_A_C1", ears_a, "C1", 0)
ears_rows("EARS_A_C2", ears_a, "C2", 0)
ears_rows("EARS_B_C1_MIN05", ears_b, "C1", 0.5)
ears_rows("EARS_B_C2_MIN05", ears_b, "C2", 0.5)

# The C3 caveat (docs/methodology.md §7.1): on the spike day 12 with C2 = 7/sqrt(2) = 4.95, earsC's C3
# bound y_t + sd_t (z - S_{t-1} - S_{t-2}) exceeds y_t whatever y_t is, so it cannot alarm on
# that day; it alarms on the following day instead. (earsC fails on a one-day range, hence the
# two trailing days.) Rows: (day, upper bound, alarm).
caveat <- c(5, 5, 4, 6, 7, 5, 3, 6, 4, 5, 7, 12, 5, 4)
vec("C3_CAVEAT", caveat)
r3 <- earsC(sts(observed = matrix(caveat, ncol = 1)), control = list(method = "C3"))
cat("const C3_CAVEAT_SURVEILLANCE: &[(usize, f64, bool)] = &[\n")
ub3 <- as.vector(upperbound(r3))
al3 <- as.vector(alarms(r3))
for (i in seq_along(ub3)) cat(sprintf("    (%d, %s, %s),\n", r3@control$range[i], num(ub3[i]), ifelse(al3[i], "true", "false")))
cat("];\n")

# ---------------------------------------------------------------------------------------------
# CUSUMs. algo.cusum never resets after an alarm; the reset of docs/methodology.md §7.3 is obtained by
# restarting it (S_0 = 0) on the day after each alarm. Rows: (S_t before reset, alarm).
# ---------------------------------------------------------------------------------------------
cusum_with_reset <- function(y, m, k, h, trans) {
  n <- length(y)
  s <- numeric(0)
  al <- logical(0)
  start <- 1
  dp <- suppressWarnings(create.disProg(week = 1:n, observed = y, state = rep(0, n)))
  while (start <= n) {
    res <- algo.cusum(dp, control = list(range = start:n, k = k, h = h, m = m[start:n], trans = trans))
    first <- which(res$alarm == 1)[1]
    last <- if (is.na(first)) n - start + 1 else first
    s <- c(s, res$cusum[1:last])
    al <- c(al, res$alarm[1:last] == 1)
    start <- start + last
  }
  list(s = s, alarm = al)
}
emit_cusum <- function(name, r) {
  cat(sprintf("const %s: &[(f64, bool)] = &[\n", name))
  for (i in seq_along(r$s)) cat(sprintf("    (%s, %s),\n", num(r$s[i]), ifelse(r$alarm[i], "true", "false")))
  cat("];\n")
}

cusum_y <- c(4, 6, 3, 5, 4, 7, 9, 11, 10, 6, 5, 4, 3, 8, 12, 14, 6, 4, 5, 3)
cusum_m <- rep(c(4.5, 5, 5.5, 5), 5)
vec("CUSUM_Y", cusum_y)
vec("CUSUM_M", cusum_m)
# Standardised: (y - m)/sqrt(m), the default k = 1.04, h = 2.26.
emit_cusum("CUSUM_STANDARD", cusum_with_reset(cusum_y, cusum_m, 1.04, 2.26, "standard"))
# The same without the reset, to show where the two agree (up to the first alarm).
dp <- suppressWarnings(create.disProg(week = seq_along(cusum_y), observed = cusum_y, state = rep(0, length(cusum_y))))
plain <- algo.cusum(dp, control = list(range = seq_along(cusum_y), k = 1.04, h = 2.26, m = cusum_m, trans = "standard"))
vec("CUSUM_STANDARD_NO_RESET", plain$cusum)

# Poisson CUSUM reference values k = (theta1 - theta0)/(ln theta1 - ln theta0),
# theta1 = theta0 + s sqrt(theta0). Rows: (theta0, s, k).
cat("const POISSON_K: &[(f64, f64, f64)] = &[\n")
for (theta0 in c(0.5, 2, 4, 10, 50)) for (s in c(0.5, 1, 2)) {
  k <- surveillance:::findK(theta0, surveillance:::getTheta1(theta0, s = s, distr = "poisson"), distr = "poisson")
  cat(sprintf("    (%s, %s, %s),\n", num(theta0), num(s), num(k)))
}
cat("];\n")

# Raw-count Poisson CUSUM S_t = max(0, S_{t-1} + y_t - k) (algo.cusum with trans = "none"),
# theta0 = 5, s = 1, h = 6.
k5 <- surveillance:::findK(5, surveillance:::getTheta1(5, s = 1, distr = "poisson"), distr = "poisson")
cat(sprintf("const POISSON_CUSUM_K: f64 = %s;\n", num(k5)))
emit_cusum("POISSON_CUSUM", cusum_with_reset(cusum_y, rep(5, length(cusum_y)), k5, 6, "none"))
