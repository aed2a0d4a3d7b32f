# Reference detectors from the R package `surveillance` for vigil's detection benchmark.
#
#   Rscript benches/detection/baselines.R SERIES_CSV OUT_CSV \
#       [--methods ears,farrington,glrnb,glrpois,glm] [--sample N --seed S] [--cores C]
#       [--min-sigma X]
#
# Input SERIES_CSV: header `region,category,date,count`, one complete daily series per
# (region, category) pair: every date from the pair's first to its last (zeros included),
# dates YYYY-MM-DD, counts non-negative integers. Anything else is an error.
#
# Output OUT_CSV: header `method,region,category,date,stat`, one row per (method, series, date)
# on which the method has a value (days before a method has enough history have no row). `stat`
# is a real number, LARGER MEANS MORE ALARMING: the caller alarms on a day iff stat >= threshold
# and sweeps the threshold. Rows are grouped by series (sorted by region, then category, in byte
# order), then by method, then date; stat is printed with 12 significant digits (never NA; Inf or
# -Inf only for EARS with --min-sigma 0). Everything is prospective: a day's stat uses only that
# day's count and earlier ones.
#
# `--sample N --seed S` runs a deterministic sample of N series: the series are sorted by
# (region, category), `set.seed(S); sample(n, N)` picks them, and they are written in sorted order.
# The sample is printed to stderr, as are progress and per-method timings. `--cores` (default
# min(2, detectCores())) runs series in parallel with forked workers (parallel::mclapply); the
# output does not depend on it.
#
# Produced with R 4.2.2 and surveillance 1.20.3 (Debian bookworm: apt-get install
# r-cran-surveillance). Debian's base R also ships `parallel`; nothing else is needed.
#
# ============================================================================================
# Methods and their stat (d = day index, y_d = the day's count)
# ============================================================================================
#
# ears_c1, ears_c2 - surveillance::earsC, method "C1" / "C2", baseline = 7 days (C2: days
#   d-9..d-3, the 2-day guard band), minSigma = 0.5 (`--min-sigma`; earsC's documented advice
#   for sparse data, "Howard Burkom suggests using a value of 0.5 or 1", and vigil's own
#   `sigma_min` default; with 0 an all-equal baseline gives an infinite or undefined C).
#   stat = C = (y_d - mean)/max(sd, minSigma). earsC only returns the upper bound
#   mean + z_alpha * max(sd, minSigma), so it is run twice: at alpha = 0.5 (z = 0 exactly, the bound
#   is the baseline mean) and at alpha = pnorm(-1) (z = 1), and C = (y - ub_0.5)/(ub_z1 - ub_0.5)
#   divided by that z (see ears_cusum.R, which solves two bounds the same way). If the floored sd
#   is 0 (only with --min-sigma 0): C = +Inf above the mean, -Inf below, 0 at it. First rows:
#   C1 on day 8, C2 on day 10.
# ears_c3 - the JHU/APL C3 (SAGES Ears.py; docs/methodology.md §7.1), not earsC's "C3" (whose
#   bound cancels y_d, so it cannot alarm on a one-day spike): S_i = max(0, C2_i - 1),
#   stat = S_d + S~_{d-1} + S~_{d-2} with S~_i = S_i if S_i < 2, else 0 (a day that already
#   signalled on its own, C2 >= 3, is not counted again: APL's cusum reset at thresh = 2).
#   First row on day 12.
#
# glm - a quasi-Poisson log-linear GLM: intercept + linear trend + day of week (6 dummies),
#   fitted with glm.fit (the IRLS glm() uses) on the trailing window of the 364 days that end 8
#   days before the fit day (a 7-day guard band), at least 56 days of them. Refitted WEEKLY: the
#   series is cut into 7-day blocks from its first day; the block's first day is the fit day and
#   the fit predicts all 7 days of the block (the guard band is 7..13 days). phi = Pearson
#   X^2/df (not floored). The expected count mu_d is floored at 0.5/(window length) (half an
#   event in the window), so an all-zero window or day of week does not give mu = 0 and an
#   infinite stat. stat = -log10 P(Y >= y_d), Y ~ NB(mean mu_d, size mu_d/(phi - 1)) if phi > 1
#   (variance phi * mu_d), Y ~ Poisson(mu_d) otherwise; computed on the log scale, so it is
#   finite. First row on day 64.
#
# glrpois - surveillance::algo.glrnb (the engine of glrnb() on a one-column sts), alpha = 0:
#   the Poisson GLR-CUSUM for an intercept change (change = "intercept", dir = "inc",
#   Mtilde = 1), window-limited with M = 14, ret = "value", in-control mean mu0_d = the glm
#   method's mu_d above (prospective). c.ARL = .Machine$double.xmax, so it never alarms and never
#   restarts: the statistic only depends on the days d-14..d, and a threshold sweep over it is
#   the sweep of c.ARL that glrnb would alarm at (up to the restart after a first alarm, which
#   a benchmark scoring alarms per day should not want anyway). stat = the statistic
#   (upperbound), >= 0. Note that surveillance's window-limited Poisson GLR maximises over change
#   points k = d-14..d-1 only (windows of 2..15 days; the one-day window [d, d] is never tried),
#   while the NB version below tries k = d-14..d. First row on day 78 (64 + M): every row has
#   a full window.
# glrnb - the same with the negative binomial likelihood (Hoehle & Paul 2008). glrnb wants one
#   dispersion alpha (variance mu + alpha mu^2); it is estimated prospectively per weekly block
#   from the same GLM fit by moments, alpha = max(1e-3, (X^2 - df)/sum(mu_train)) (the NB2
#   alpha that matches phi at the window's mean; the floor keeps glrnb on its NB code, which
#   glrnb would leave for the Poisson one at alpha = 0). Each block is run as its own
#   algo.glrnb call over the block's days and the M = 14 days before them with that block's
#   alpha (the values on the block's days are those of a whole-series call with that alpha).
#   TRAP (surveillance 1.20.3, C glr_nb_window): the shift kappa is estimated with an undamped
#   Newton iteration (kappa += score/Fisher, the Fisher information ~ exp(kappa) * sum(mu0))
#   started at the previous change point's estimate; on near-zero mu0 (sparse series) the steps
#   overshoot and diverge, the estimate ends at 0 or NaN and the statistic comes out far too low
#   (0 after algo.glrnb maps NA and negatives to 0), so the method alarms late or not at all.
#   Example: mu0 = 0.01 on all days, alpha = 0.5, counts 0 x 20 then 1, 0, 2, 1, 0, 3: glrnb
#   gives 3.40 on the first event's day and 2.82 the day after (both exact), then 0 on every
#   later day, where the exact window GLR (brute-force maximisation of the same likelihood) is
#   10.2, 13.6, 12.9, 24.7 on the days of the counts 2, 1, 0, 3 and glrpois 10.9, 14.5, 13.6,
#   26.4; at mu0 = 0.05 glrnb is exact. glm's mu0 floor
#   (0.5/364 = 0.0014) is in that range, so expect it on sparse series. It is kept as
#   surveillance computes it; glrpois (closed-form kappa = log(sum x/sum mu0)) sits beside it.
#
# farrington - surveillance's farringtonFlexible, Noufaily et al. (2013) variant, adapted to
#   DAILY series (sts with epochAsDate = TRUE, frequency 365, so the design is in days):
#     noPeriods = 10, populationOffset = FALSE, fitFun = "algo.farrington.fitGLM.flexible",
#     w = 3 (days: the reference window of each past year is the 7 days centred on the same
#     date, i.e. the same calendar week), weightsThreshold = 2.58, reweight = TRUE,
#     pastWeeksNotIncluded = 182 (26 weeks, in days), pThresholdTrend = 1 (Noufaily: keep the
#     trend when farringtonFlexible's other conditions hold: b >= 3 years and no extrapolation
#     beyond the largest baseline count), thresholdMethod = "nbPlugin" (NB threshold),
#     limit54 = c(5, 28) (Farrington's "5 cases in the past 4 weeks", in days),
#     b = min(3, the number of whole past years available) for each block (3 once the series
#     has 3 years + 3 days before the block's middle day, 2 or 1 before that; the trend is only
#     ever kept with b = 3, so with b < 3 the fit with trend, which farringtonFlexible computes
#     and then discards, is skipped).
#   Refitted WEEKLY, not daily: the fit for a 7-day block is exactly farringtonFlexible's fit
#   for the block's middle day m (dayToConsider = m, so the same-week windows of the past years
#   are centred on the block) and predicts every day of the block from the same model (trend
#   evaluated at each day; seasonal level = the current period). It only uses data up to
#   m - 183 and the past years' windows, so it is prospective for all 7 days. The data set is
#   built by surveillance's own algo.farrington.data.glm (the reference windows and the 10-level
#   period factor); the fit re-implements algo.farrington.fitGLM.flexible and
#   algo.farrington.glm with glm.fit instead of glm() (no formula/model-frame/summary overhead;
#   same IRLS, same dispersion, Anscombe residuals with the same hat values, the same weights,
#   the same trend rule).
#   test_baselines.R checks that on the block middles the result equals farringtonFlexible's.
#   stat = -log10 p, p = farringtonFlexible's `pvalue` = P(Y >= y_d) under
#   NB(size mu0/(phi - 1), prob 1/phi) (Poisson(mu0) if phi = 1) with mu0 = exp(linear
#   predictor), phi = max(1, dispersion of the reweighted fit); with this definition
#   stat >= -log10(alpha) is exactly farringtonFlexible's nbPlugin alarm rule y > upperbound
#   at level alpha. Days failing the limit54 rule (fewer than 5 cases in the 28 days ending on
#   the day) get stat = 0: farringtonFlexible never alarms on them. Blocks whose fit does not
#   converge (with or without trend) have no rows, as farringtonFlexible gives NA.
#   FIRST YEAR (b = 0): farringtonFlexible needs b >= 1 (its reference windows and period factor
#   need a past year: 365 + 3 days of history before the day), and with b = 0 it fails. Blocks
#   with less than that behind their middle day therefore use a "b = 0" design: the same quasi-Poisson fit (algo.farrington's fit rules
#   with reweighting at 2.58; trend dropped as farringtonFlexible does for b < 3; no period
#   factor, which needs past years) on the glm method's trailing window (the 364 days ending
#   8 days before the block, at least 56), the same NB plug-in p-value and limit54 rule. So
#   farrington has rows from day 64 on every series, a one-year stream included; stderr says
#   how many days each design scored.
#
# Speed (weekly refits): about 4.5 CPU seconds per 10-year daily series, three quarters of it
# farrington; 23 Chicago districts x 3,652 days took 105 CPU s (80 s on 2 busy cores). Time a
# subset with --sample.

suppressPackageStartupMessages(library(surveillance))

ALL_METHODS <- c("ears", "farrington", "glrnb", "glrpois", "glm")
OUT_ORDER <- c("ears_c1", "ears_c2", "ears_c3", "farrington", "glrnb", "glrpois", "glm")

P <- list(
  ears_baseline = 7,
  min_sigma = 0.5,
  c3_k = 1, c3_reset = 2,
  block = 7L,
  glm_window = 364L, glm_guard = 7L, glm_min_days = 56L,
  glr_M = 14L, glr_Mtilde = 1L, glrnb_alpha_min = 1e-3,
  far_bmax = 3L, far_w = 3L, far_noPeriods = 10L, far_past = 182L, far_weights = 2.58,
  far_pThresholdTrend = 1, far_limit54 = c(5, 28)
)

say <- function(...) {
  cat(sprintf(...), "\n", sep = "", file = stderr())
  flush(stderr())
}

# ------------------------------------------------------------------------------------------------
# Input
# ------------------------------------------------------------------------------------------------

read_series <- function(path) {
  d <- utils::read.csv(path, colClasses = c("character", "character", "character", "character"),
                       na.strings = character(0), check.names = FALSE)
  if (!identical(names(d), c("region", "category", "date", "count"))) {
    stop("expected header region,category,date,count; got ", paste(names(d), collapse = ","))
  }
  dates <- as.Date(d$date, format = "%Y-%m-%d")
  bad <- is.na(dates) | !grepl("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", d$date)
  if (any(bad)) stop("bad date '", d$date[which(bad)[1]], "' on data row ", which(bad)[1])
  cnt <- suppressWarnings(as.numeric(d$count))
  bad <- is.na(cnt) | cnt < 0 | cnt != floor(cnt)
  if (any(bad)) stop("bad count '", d$count[which(bad)[1]], "' on data row ", which(bad)[1])
  key <- paste(d$region, d$category, sep = "\r")
  ord <- order(d$region, d$category, dates, method = "radix")
  d <- d[ord, ]; dates <- dates[ord]; cnt <- cnt[ord]; key <- key[ord]
  idx <- split(seq_len(nrow(d)), factor(key, levels = unique(key)))
  lapply(idx, function(i) {
    dt <- dates[i]
    if (length(i) > 1) {
      gaps <- as.integer(diff(dt))
      if (any(gaps != 1L)) {
        j <- which(gaps != 1L)[1]
        stop(sprintf("series %s/%s is not a complete daily series: %s then %s", d$region[i[1]],
                     d$category[i[1]], format(dt[j]), format(dt[j + 1])))
      }
    }
    list(region = d$region[i[1]], category = d$category[i[1]], dates = dt, y = cnt[i])
  })
}

# ------------------------------------------------------------------------------------------------
# EARS
# ------------------------------------------------------------------------------------------------

# earsC's C statistic for `method` ("C1" or "C2") on days `range`; NA elsewhere.
ears_c <- function(y, method, min_sigma) {
  n <- length(y)
  first <- P$ears_baseline + if (method == "C1") 1 else 3
  out <- rep(NA_real_, n)
  if (n < first) return(out)
  range <- first:n
  obj <- sts(observed = matrix(y, ncol = 1))
  ctl <- list(range = range, method = method, baseline = P$ears_baseline, minSigma = min_sigma)
  ub0 <- as.vector(upperbound(earsC(obj, control = c(ctl, alpha = 0.5))))  # z = 0: the mean
  a1 <- pnorm(-1)
  ub1 <- as.vector(upperbound(earsC(obj, control = c(ctl, alpha = a1))))
  sd <- (ub1 - ub0) / qnorm(1 - a1)  # the floored sd
  dev <- y[range] - ub0
  c <- ifelse(sd > 0, dev / sd, ifelse(dev > 0, Inf, ifelse(dev < 0, -Inf, 0)))
  out[range] <- c
  out
}

# APL C3 from the C2 series.
ears_c3_apl <- function(c2) {
  n <- length(c2)
  s <- pmax(0, c2 - P$c3_k)
  st <- ifelse(s < P$c3_reset, s, 0)
  out <- rep(NA_real_, n)
  if (n >= 3) {
    d <- 3:n
    out[d] <- s[d] + st[d - 1] + st[d - 2]  # NA unless C2 exists on all three days
  }
  out
}

# ------------------------------------------------------------------------------------------------
# Quasi-Poisson fits (glm.fit, as glm() runs it)
# ------------------------------------------------------------------------------------------------

QP <- quasipoisson(link = "log")
GLM_CONTROL <- glm.control()

qp_fit <- function(X, y, w = NULL) {
  if (is.null(w)) w <- rep(1, length(y))
  suppressWarnings(glm.fit(X, y, weights = w, family = QP, control = GLM_CONTROL))
}

# summary.glm's dispersion estimate for a quasi family.
qp_dispersion <- function(fit) {
  if (fit$df.residual <= 0) return(NaN)
  w <- fit$weights
  sum((w * fit$residuals^2)[w > 0]) / fit$df.residual
}

# lm.influence(...)$hat for a glm.fit fit.
qp_hat <- function(fit) {
  q <- fit$qr
  h <- rowSums(qr.qy(q, diag(1, nrow(q$qr), q$rank))^2)
  h[h > 1 - 10 * .Machine$double.eps] <- 1
  h
}

# Coefficients with aliased (NA) ones set to 0, as predict.glm effectively does.
coef0 <- function(fit) {
  b <- fit$coefficients
  b[is.na(b)] <- 0
  b
}

# -log10 P(Y >= y) under NB(mean mu, variance phi * mu) (Poisson if phi <= 1), on the log scale.
upper_stat <- function(y, mu, phi) {
  lp <- if (phi > 1) {
    pnbinom(y - 1, size = mu / (phi - 1), mu = mu, lower.tail = FALSE, log.p = TRUE)
  } else {
    ppois(y - 1, mu, lower.tail = FALSE, log.p = TRUE)
  }
  (0 - lp) / log(10)  # 0 - lp: P = 1 gives +0, not -0
}

# ------------------------------------------------------------------------------------------------
# glm (and the mu0 / alpha of the GLR detectors)
# ------------------------------------------------------------------------------------------------

block_starts <- function(n) seq.int(1L, n, by = P$block)

glm_window <- function(k0) {
  hi <- k0 - P$glm_guard - 1L
  lo <- max(1L, hi - P$glm_window + 1L)
  if (hi - lo + 1L < P$glm_min_days) return(NULL)
  lo:hi
}

glm_method <- function(y, dates) {
  n <- length(y)
  dow <- as.integer(format(dates, "%u"))
  mu <- phi_d <- alpha_d <- rep(NA_real_, n)
  for (k0 in block_starts(n)) {
    tr <- glm_window(k0)
    if (is.null(tr)) next
    days <- k0:min(n, k0 + P$block - 1L)
    design <- function(t) {
      X <- cbind(1, (t - k0) / 365, outer(dow[t], 2:7, "==") * 1)
      X
    }
    yt <- y[tr]
    floor_mu <- 0.5 / length(tr)
    if (sum(yt) == 0) {
      m <- rep(floor_mu, length(days)); phi <- 1; alpha <- P$glrnb_alpha_min
    } else {
      fit <- qp_fit(design(tr), yt)
      b <- coef0(fit)
      m <- pmax(exp(drop(design(days) %*% b)), floor_mu)
      phi <- qp_dispersion(fit)
      if (!is.finite(phi)) phi <- 1
      x2 <- phi * fit$df.residual
      alpha <- max(P$glrnb_alpha_min, (x2 - fit$df.residual) / sum(fit$fitted.values))
    }
    mu[days] <- m; phi_d[days] <- phi; alpha_d[days] <- alpha
  }
  stat <- rep(NA_real_, n)
  ok <- which(!is.na(mu))
  for (t in ok) stat[t] <- upper_stat(y[t], mu[t], phi_d[t])
  list(mu = mu, phi = phi_d, alpha = alpha_d, stat = stat)
}

# ------------------------------------------------------------------------------------------------
# GLR-CUSUMs
# ------------------------------------------------------------------------------------------------

glr_ctl <- function(range, mu0, alpha) {
  list(range = range, c.ARL = .Machine$double.xmax, mu0 = mu0, alpha = alpha,
       Mtilde = P$glr_Mtilde, M = P$glr_M, change = "intercept", theta = NULL, dir = "inc",
       ret = "value")
}

glr_value <- function(y, mu0, alpha) {
  r <- algo.glrnb(list(observed = matrix(as.integer(y), ncol = 1)),
                  control = glr_ctl(seq_along(y), mu0, alpha))
  as.vector(r$upperbound)
}

glrpois_method <- function(y, mu) {
  n <- length(y)
  out <- rep(NA_real_, n)
  have <- which(!is.na(mu))
  if (length(have) == 0) return(out)
  a <- have[1]
  if (n < a + P$glr_M) return(out)
  v <- glr_value(y[a:n], mu[a:n], 0)
  idx <- (a + P$glr_M):n
  out[idx] <- v[idx - a + 1L]
  out
}

glrnb_method <- function(y, mu, alpha) {
  n <- length(y)
  out <- rep(NA_real_, n)
  have <- which(!is.na(mu))
  if (length(have) == 0) return(out)
  first <- have[1] + P$glr_M
  for (k0 in block_starts(n)) {
    days <- k0:min(n, k0 + P$block - 1L)
    days <- days[days >= first]
    if (length(days) == 0) next
    idx <- (days[1] - P$glr_M):days[length(days)]
    v <- glr_value(y[idx], mu[idx], alpha[days[1]])
    out[days] <- v[(length(idx) - length(days) + 1L):length(idx)]
  }
  out
}

# ------------------------------------------------------------------------------------------------
# Farrington flexible (Noufaily), daily design, weekly refits
# ------------------------------------------------------------------------------------------------

# algo.farrington.fitGLM.flexible, with glm.fit. X has the intercept first, then "wtime" (if
# trend), then the period dummies. Returns NULL when it does not converge.
far_fit_flexible <- function(X, y, trend) {
  if (!trend) X <- X[, colnames(X) != "wtime", drop = FALSE]
  fit <- qp_fit(X, y)
  if (!fit$converged) {
    if (trend) {
      X <- X[, colnames(X) != "wtime", drop = FALSE]
      trend <- FALSE
      fit <- qp_fit(X, y)
    }
    if (!fit$converged) return(NULL)
  }
  phi <- max(qp_dispersion(fit), 1)
  # surveillance:::anscombe.residuals
  mu <- fit$fitted.values
  s <- 3 / 2 * (y^(2 / 3) * mu^(-1 / 6) - mu^(1 / 2))
  s <- s / sqrt(phi * (1 - qp_hat(fit)))
  omega <- surveillance:::algo.farrington.assign.weights(s, P$far_weights)
  fit <- qp_fit(X, y, omega)
  fit$phi <- max(qp_dispersion(fit), 1)
  fit$X <- X
  fit$trend <- trend
  fit
}

# t-test p-value of the trend coefficient, as summary.glm gives it (dispersion estimated).
trend_pvalue <- function(fit) {
  j <- which(colnames(fit$X) == "wtime")
  q <- fit$qr
  p1 <- seq_len(q$rank)
  piv <- q$pivot[p1]
  if (!(j %in% piv)) return(NA_real_)
  covu <- chol2inv(q$qr[p1, p1, drop = FALSE])
  se <- sqrt(diag(covu) * qp_dispersion(fit))
  tv <- fit$coefficients[piv] / se
  2 * pt(-abs(tv[which(piv == j)]), fit$df.residual)
}

# The model farringtonFlexible would use on day m (b >= 1), or NULL.
far_model_noufaily <- function(y, dates, m, b) {
  dg <- surveillance:::algo.farrington.data.glm(
    dayToConsider = dates[m], b = b, freq = 365, epochAsDate = TRUE, epochStr = "day",
    vectorOfDates = dates, w = P$far_w, noPeriods = P$far_noPeriods, observed = y,
    population = rep(1, length(y)), verbose = FALSE, pastWeeksNotIncluded = P$far_past, k = m)
  sg <- as.factor(dg$seasgroups)
  lev <- levels(sg)
  X <- cbind(1, dg$wtime, outer(as.character(sg), lev[-1], "==") * 1)
  colnames(X) <- c("(Intercept)", "wtime", paste0("seasgroups", lev[-1]))
  x0_season <- as.numeric(paste0("seasgroups", P$far_noPeriods) == colnames(X))
  day0 <- dg$vectorOfDates[1]
  wtime_of <- function(t) as.numeric(dates[t] - day0)
  # With b < 3 algo.farrington.glm always drops the trend and refits without it, so the fit
  # with trend is skipped (same model, half the fits; the only difference is a series where the
  # fit with trend converges and the one without does not, on which farringtonFlexible stops
  # with an error and this gives no rows).
  fit <- far_fit_flexible(X, dg$response, b >= 3)
  if (is.null(fit)) return(NULL)
  row_for <- function(fit, t) {
    x <- x0_season
    x[1] <- 1
    x <- x[match(colnames(fit$X), colnames(X))]
    if (fit$trend) x[colnames(fit$X) == "wtime"] <- wtime_of(t)
    x
  }
  if (fit$trend) {
    # algo.farrington.glm: keep the trend only if significant, b >= 3 and no extrapolation.
    pred_m <- exp(sum(row_for(fit, m) * coef0(fit)))
    pv <- trend_pvalue(fit)
    do_trend <- isTRUE(pv < P$far_pThresholdTrend) && b >= 3 && pred_m <= max(dg$response)
    if (!do_trend) {
      fit <- far_fit_flexible(X, dg$response, FALSE)
      if (is.null(fit)) return(NULL)
    }
  }
  list(eta = function(t) sum(row_for(fit, t) * coef0(fit)), phi = fit$phi)
}

# The "b = 0" design for the first year: intercept-only reweighted quasi-Poisson on the glm
# method's trailing window.
far_model_b0 <- function(y, tr) {
  X <- matrix(1, nrow = length(tr), ncol = 1, dimnames = list(NULL, "(Intercept)"))
  fit <- far_fit_flexible(X, y[tr], FALSE)
  if (is.null(fit)) return(NULL)
  b <- coef0(fit)[1]
  list(eta = function(t) b, phi = fit$phi)
}

# Largest b <= bmax with all reference windows inside the series, for day m.
far_b <- function(dates, m) {
  for (b in P$far_bmax:1) {
    ref <- seq(dates[m], by = "-1 year", length.out = b + 1)[b + 1]
    i <- as.integer(ref - dates[1]) + 1L
    if (i - P$far_w >= 1L) return(b)
  }
  0L
}

far_stat <- function(y, t, mu0, phi) {
  enough <- sum(y[max(1L, t - P$far_limit54[2] + 1L):t]) >= P$far_limit54[1]
  if (!is.finite(mu0)) return(NA_real_)
  if (!enough) return(0)
  upper_stat(y[t], mu0, phi)
}

farrington_method <- function(y, dates) {
  n <- length(y)
  stat <- rep(NA_real_, n)
  design <- rep(NA_integer_, n)
  for (k0 in block_starts(n)) {
    days <- k0:min(n, k0 + P$block - 1L)
    m <- min(n, k0 + 3L)
    b <- far_b(dates, m)
    model <- NULL
    if (b >= 1L) {
      model <- far_model_noufaily(y, dates, m, b)
    } else {
      tr <- glm_window(k0)
      if (!is.null(tr)) model <- far_model_b0(y, tr)
    }
    if (is.null(model)) next
    for (t in days) {
      stat[t] <- far_stat(y, t, exp(model$eta(t)), model$phi)
      design[t] <- b
    }
  }
  list(stat = stat, design = design)
}

# ------------------------------------------------------------------------------------------------
# One series
# ------------------------------------------------------------------------------------------------

csv_field <- function(x) {
  q <- grepl("[\",\r\n]", x)
  x[q] <- paste0("\"", gsub("\"", "\"\"", x[q]), "\"")
  x
}

run_series <- function(s, methods, min_sigma) {
  y <- s$y
  n <- length(y)
  res <- list()
  tm <- c()
  clock <- function(name, expr) {
    t0 <- proc.time()[["elapsed"]]
    v <- force(expr)
    tm[[name]] <<- proc.time()[["elapsed"]] - t0
    v
  }
  if ("ears" %in% methods) {
    clock("ears", {
      res$ears_c1 <- ears_c(y, "C1", min_sigma)
      res$ears_c2 <- ears_c(y, "C2", min_sigma)
      res$ears_c3 <- ears_c3_apl(res$ears_c2)
    })
  }
  far_design <- NULL
  if ("farrington" %in% methods) {
    f <- clock("farrington", farrington_method(y, s$dates))
    res$farrington <- f$stat
    far_design <- table(factor(f$design[!is.na(f$stat)], levels = 0:P$far_bmax))
  }
  if (any(c("glm", "glrnb", "glrpois") %in% methods)) {
    g <- clock("glm", glm_method(y, s$dates))
    if ("glm" %in% methods) res$glm <- g$stat
    if ("glrnb" %in% methods) res$glrnb <- clock("glrnb", glrnb_method(y, g$mu, g$alpha))
    if ("glrpois" %in% methods) res$glrpois <- clock("glrpois", glrpois_method(y, g$mu))
  }
  date_s <- format(s$dates, "%Y-%m-%d")
  prefix <- paste(csv_field(s$region), csv_field(s$category), sep = ",")
  lines <- character(0)
  rows <- c()
  for (meth in OUT_ORDER) {
    v <- res[[meth]]
    if (is.null(v)) next
    keep <- which(!is.na(v))
    rows[[meth]] <- length(keep)
    if (length(keep) == 0) next
    lines <- c(lines, paste(meth, prefix, date_s[keep], sprintf("%.12g", v[keep]), sep = ","))
  }
  list(lines = lines, times = tm, rows = rows, far_design = far_design)
}

# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

usage <- function() {
  stop("usage: Rscript baselines.R SERIES_CSV OUT_CSV [--methods ears,farrington,glrnb,glrpois,glm]",
       " [--sample N --seed S] [--cores C] [--min-sigma X]", call. = FALSE)
}

parse_args <- function(args) {
  opt <- list(methods = ALL_METHODS, sample = NA_integer_, seed = NA_integer_,
              cores = min(2L, parallel::detectCores()), min_sigma = P$min_sigma)
  pos <- character(0)
  i <- 1
  while (i <= length(args)) {
    a <- args[i]
    if (a %in% c("--methods", "--sample", "--seed", "--cores", "--min-sigma")) {
      if (i == length(args)) usage()
      v <- args[i + 1]
      i <- i + 2
      if (a != "--methods" && is.na(suppressWarnings(as.numeric(v)))) usage()
      if (a == "--methods") {
        opt$methods <- unique(strsplit(v, ",", fixed = TRUE)[[1]])
        bad <- setdiff(opt$methods, ALL_METHODS)
        if (length(bad) > 0 || length(opt$methods) == 0) {
          stop("unknown method(s): ", paste(bad, collapse = ", "), "; known: ",
               paste(ALL_METHODS, collapse = ","), call. = FALSE)
        }
      } else if (a == "--sample") {
        opt$sample <- as.integer(v)
      } else if (a == "--seed") {
        opt$seed <- as.integer(v)
      } else if (a == "--cores") {
        opt$cores <- as.integer(v)
      } else {
        opt$min_sigma <- as.numeric(v)
      }
    } else if (startsWith(a, "--")) {
      usage()
    } else {
      pos <- c(pos, a)
      i <- i + 1
    }
  }
  if (length(pos) != 2) usage()
  if (is.na(opt$sample) != is.na(opt$seed)) stop("--sample and --seed go together", call. = FALSE)
  if (!is.na(opt$sample) && opt$sample < 1) stop("--sample must be >= 1", call. = FALSE)
  if (is.na(opt$cores) || opt$cores < 1) stop("--cores must be >= 1", call. = FALSE)
  if (is.na(opt$min_sigma) || opt$min_sigma < 0) stop("--min-sigma must be >= 0", call. = FALSE)
  opt$input <- pos[1]
  opt$output <- pos[2]
  opt
}

main <- function(args = commandArgs(trailingOnly = TRUE)) {
  opt <- parse_args(args)
  t_start <- proc.time()[["elapsed"]]
  series <- read_series(opt$input)
  say("read %d series, %d series-days from %s", length(series),
      sum(vapply(series, function(s) length(s$y), 1L)), opt$input)
  if (!is.na(opt$sample)) {
    set.seed(opt$seed)
    pick <- if (opt$sample >= length(series)) seq_along(series) else sort(sample(length(series), opt$sample))
    series <- series[pick]
    say("sample of %d series (seed %d):", length(series), opt$seed)
    for (s in series) say("  %s/%s", s$region, s$category)
  }
  say("methods: %s; min_sigma %g; %d core(s)", paste(opt$methods, collapse = ","), opt$min_sigma, opt$cores)
  ns <- length(series)
  tmpdir <- tempfile("baselines")
  dir.create(tmpdir)
  on.exit(unlink(tmpdir, recursive = TRUE), add = TRUE)
  work <- function(i) {
    s <- series[[i]]
    t0 <- proc.time()[["elapsed"]]
    r <- run_series(s, opt$methods, opt$min_sigma)
    f <- file.path(tmpdir, sprintf("%06d.csv", i))
    writeLines(r$lines, f)
    say("[%d/%d] %s/%s: %d days, %d rows, %.1f s", i, ns, s$region, s$category, length(s$y),
        length(r$lines), proc.time()[["elapsed"]] - t0)
    list(file = f, times = r$times, rows = r$rows, far_design = r$far_design)
  }
  out <- if (opt$cores > 1) {
    parallel::mclapply(seq_len(ns), work, mc.cores = opt$cores, mc.preschedule = FALSE)
  } else {
    lapply(seq_len(ns), work)
  }
  failed <- which(vapply(out, function(o) inherits(o, "try-error") || is.null(o$file), TRUE))
  if (length(failed) > 0) {
    stop("series ", paste(failed, collapse = ", "), " failed: ", as.character(out[[failed[1]]]))
  }
  con <- file(opt$output, open = "wb")
  writeLines("method,region,category,date,stat", con)
  close(con)
  for (o in out) file.append(opt$output, o$file)
  sum_named <- function(key) {
    v <- unlist(lapply(out, `[[`, key))
    if (length(v) == 0) return(c())
    tapply(v, factor(names(v), levels = unique(names(v))), sum)
  }
  rows <- sum_named("rows")
  times <- sum_named("times")
  say("rows: %s", paste(sprintf("%s %d", names(rows), as.integer(rows)), collapse = ", "))
  say("cpu-side seconds per method (summed over series): %s",
      paste(sprintf("%s %.1f", names(times), times), collapse = ", "))
  if ("farrington" %in% opt$methods) {
    fd <- Reduce(`+`, lapply(out, `[[`, "far_design"))
    say("farrington days by design: %s",
        paste(sprintf("b=%s %d", names(fd), as.integer(fd)), collapse = ", "))
  }
  say("wrote %s in %.1f s", opt$output, proc.time()[["elapsed"]] - t_start)
  invisible(NULL)
}

if (sys.nframe() == 0L) main()
