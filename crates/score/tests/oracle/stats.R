# Reference values for crates/score/tests/stats_oracle.rs, computed with base R's own
# distribution functions (independent of the Rust code under test).
#
# Run from the repository root:
#   Rscript crates/score/tests/oracle/stats.R
# Produced with R 4.2.2 Patched (2022-11-10 r83330), Debian bookworm `r-base-core`.
# The script prints Rust array literals that are pasted verbatim into the test file.

num <- function(x) {
  s <- sprintf("%.17g", x)
  # Rust float literals need a decimal point or an exponent.
  ifelse(grepl("[.eE]", s) | grepl("inf", s, ignore.case = TRUE), s, paste0(s, ".0"))
}
int <- function(x) sprintf("%.0f", x)
emit <- function(name, type, rows) {
  cat(sprintf("const %s: &[%s] = &[\n", name, type))
  for (r in rows) cat("    (", paste(r, collapse = ", "), "),\n", sep = "")
  cat("];\n")
}

cat("// R", R.version$major, ".", R.version$minor, "\n", sep = "")

# P(Y >= k), Y ~ Poisson(mu): ppois(k - 1, mu, lower.tail = FALSE).
pois <- list(c(1, 1e-3), c(2, 0.5), c(3, 0.5), c(10, 4), c(5, 20), c(50, 10), c(200, 50),
             c(130, 100), c(1000, 900), c(20000, 19500), c(30, 0.1))
emit("POISSON_SF", "(u64, f64, f64)", lapply(pois, function(a)
  c(int(a[1]), num(a[2]), num(ppois(a[1] - 1, a[2], lower.tail = FALSE)))))

# P(Y >= k), NB with mean m and variance phi*m: size = m/(phi-1), prob = 1/phi.
nb <- list(c(10, 4, 2), c(3, 0.5, 1.5), c(100, 20, 3), c(60, 20, 1.2), c(2000, 1000, 1.5),
           c(1, 5, 10), c(40, 2, 5), c(25, 12, 1.0001), c(500, 30, 4))
emit("NEGBIN_SF", "(u64, f64, f64, f64)", lapply(nb, function(a)
  c(int(a[1]), num(a[2]), num(a[3]),
    num(pnbinom(a[1] - 1, size = a[2] / (a[3] - 1), prob = 1 / a[3], lower.tail = FALSE)))))

# P(X >= k), X ~ Binomial(n, p): pbinom(k - 1, n, p, lower.tail = FALSE).
bin <- list(c(5, 10, 0.2), c(30, 100, 0.1), c(500, 10000, 0.03), c(1, 1000, 1e-4),
            c(9990, 10000, 0.999), c(60, 100, 0.5), c(3, 5, 0.99), c(80, 100, 0.3),
            c(200000, 1000000, 0.2))
emit("BINOMIAL_SF", "(u64, u64, f64, f64)", lapply(bin, function(a)
  c(int(a[1]), int(a[2]), num(a[3]), num(pbinom(a[1] - 1, a[2], a[3], lower.tail = FALSE)))))

# Student t: (t, df, cdf, sf).
tt <- list(c(2, 5), c(-3.5, 10), c(40, 3), c(1.5, 1e5), c(-0.3, 2.5), c(10, 27), c(0.1, 1),
           c(-100, 1), c(2.7637694581126957, 10), c(6, 13), c(2, 1e10), c(-8, 1e6))
emit("STUDENT_T", "(f64, f64, f64, f64)", lapply(tt, function(a)
  c(num(a[1]), num(a[2]), num(pt(a[1], a[2])), num(pt(a[1], a[2], lower.tail = FALSE)))))

# Student t quantiles: (p, df, q).
qtl <- list(c(0.99, 10), c(0.95, 27), c(1e-10, 3), c(0.3, 7), c(0.999999, 1), c(0.975, 1000),
            c(1e-6, 2.5), c(0.9, 1), c(0.75, 2), c(1e-300, 1), c(0.01, 1e6))
emit("STUDENT_T_QUANTILE", "(f64, f64, f64)", lapply(qtl, function(a)
  c(num(a[1]), num(a[2]), num(qt(a[1], a[2])))))

# Normal quantiles: (p, q).
qn <- c(0.5, 0.975, 1e-10, 1e-300, 0.3, 0.999999, 0.02425, 0.02, 0.9, 1e-20)
emit("NORM_QUANTILE", "(f64, f64)", lapply(qn, function(p) c(num(p), num(qnorm(p)))))

# Normal tails: (z, cdf, sf).
zn <- c(0, 0.3, 1, -2, 2.5, 5, 10, 37.5, -38, 3.2)
emit("NORM_TAILS", "(f64, f64, f64)", lapply(zn, function(z)
  c(num(z), num(pnorm(z)), num(pnorm(z, lower.tail = FALSE)))))

# Regularised incomplete gamma: (a, x, P, Q).
ga <- list(c(0.5, 0.1), c(100, 80), c(1e4, 1.05e4), c(3.3, 20), c(1, 1), c(25, 24.5), c(0.1, 5))
emit("INC_GAMMA", "(f64, f64, f64, f64)", lapply(ga, function(a)
  c(num(a[1]), num(a[2]), num(pgamma(a[2], a[1])), num(pgamma(a[2], a[1], lower.tail = FALSE)))))

# Regularised incomplete beta: (a, b, x, I).
be <- list(c(0.5, 0.5, 0.2), c(100, 200, 0.4), c(2, 3, 0.999), c(1e3, 5, 0.99), c(30, 40, 0.3),
           c(0.7, 12, 0.01), c(5000, 5000, 0.49))
emit("INC_BETA", "(f64, f64, f64, f64)", lapply(be, function(a)
  c(num(a[1]), num(a[2]), num(a[3]), num(pbeta(a[3], a[1], a[2])))))

# ln Gamma: (x, lgamma(x)).
lg <- c(0.1, 7.5, 100.5, 1e6, -2.5, 3, 12.25)
emit("LN_GAMMA", "(f64, f64)", lapply(lg, function(x) c(num(x), num(lgamma(x)))))

# Probit-scale score of docs/methodology.md §5: (p, 100 * clamp(qnorm(1 - p) / 4, 0, 1)).
ps <- c(0.05, 0.01, 0.001, 1e-4, 0.3, 0.5, 1e-12)
emit("P_TO_SCORE", "(f64, f64)", lapply(ps, function(p)
  c(num(p), num(100 * min(max(qnorm(p, lower.tail = FALSE) / 4, 0), 1)))))
