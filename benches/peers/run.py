#!/usr/bin/env python3
"""Peers: the engines a user would weigh for vigil's job, timed next to vigil in one run.

Each peer computes the windowed counts of the default rules' count indicators (every count
indicator without a second stream: per scored region and ancestor, per hop-wide local bin, the
count over the indicator's window) over the same generated city archive (Parquet, written by
`vigil gen --archive`). The windows come from vigil itself (`vigil rules windows`: each
indicator's source, filter in SQL, window, hop, and the region -> scored ancestor pairs), so the
peers compute exactly what vigil's DataFusion baseline computes (benches/benches/history_report.rs).
Every peer's rows (indicator, region, bin, count) must be identical (compared by digest) or the
run fails. vigil itself runs `vigil replay` of the same archive: all 60 indicators, scoring,
grading, alarms; its work is a superset of the peers'.

Peers: DuckDB (one thread, and every core), Polars (one thread, and every core), DataFusion's
Python bindings (the engine vigil's own SQL runs on; every core), and Apache Flink (PyFlink's
local mini-cluster, batch mode, parallelism 1: `flink-1`). Each mode runs in a child process of
its own; wall time, CPU time and peak RSS are that child's (for Flink, the JVM that PyFlink
starts counts only as far as the Python process waits for it: its wall time is the figure).

Flink's bundled formats read CSV and JSON, not Parquet (flink-sql-parquet is a separate jar):
its events are exported once from the same Parquet archive to CSV by DuckDB (not timed), with
`ts` as epoch milliseconds, and its rows are written to a CSV sink that the digest reads back.

    python3 benches/peers/run.py [--vigil target/release/vigil] [--volumes 1,10] [--days 60]
                                 [--work /tmp/vigil-peers] [--record benches/results/peers.md]
                                 [--modes vigil,duckdb-1,polars-1,flink-1 --flink-python PY]

Not part of CI (it installs nothing; pip install duckdb polars datafusion first, and
apache-flink in a virtual environment of its own, whose python is --flink-python: it pins an
older pyarrow and Apache Beam).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def spec_of(vigil, rules):
    out = subprocess.run([vigil, "rules", "windows", rules], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def digest(rows):
    """rows: iterable of (indicator, region, bin epoch seconds, count), any order."""
    h = hashlib.sha256()
    n = 0
    total = 0
    for r in sorted(rows):
        h.update(f"{r[0]},{r[1]},{r[2]},{r[3]}\n".encode())
        n += 1
        total += r[3]
    return {"rows": n, "total": total, "sha256": h.hexdigest()[:16]}


def parquet_glob(archive, source):
    return os.path.join(archive, "events", f"source={source}", "*", "*.parquet")


def origin_utc(spec):
    # Local bins of a fixed-offset zone are UTC bins shifted by the offset.
    return datetime.datetime.fromtimestamp(-spec["zone_offset_ms"] / 1000, tz=datetime.timezone.utc)


def duckdb_mode(archive, spec, threads):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE chains (region VARCHAR, ancestor VARCHAR)")
    con.executemany("INSERT INTO chains VALUES (?, ?)", spec["chains"])
    for s in {i["source"] for i in spec["indicators"]}:
        con.execute(
            f"CREATE VIEW events_{s} AS SELECT * FROM read_parquet('{parquet_glob(archive, s)}', hive_partitioning = false)"
        )
    origin = origin_utc(spec).strftime("%Y-%m-%d %H:%M:%S+00")
    parts = []
    for i in spec["indicators"]:
        frame = i["window_s"] - i["hop_s"]
        parts.append(
            f"""SELECT '{i['id']}' AS indicator, region, epoch(bin)::BIGINT AS bin,
                   sum(n) OVER (PARTITION BY region ORDER BY bin
                                RANGE BETWEEN INTERVAL {frame} SECOND PRECEDING AND CURRENT ROW)::BIGINT AS value
                FROM (SELECT c.ancestor AS region,
                             time_bucket(INTERVAL {i['hop_s']} SECOND, e.ts, TIMESTAMPTZ '{origin}') AS bin,
                             count(*) AS n
                      FROM events_{i['source']} e JOIN chains c ON e.region = c.region
                      WHERE {i['filter_sql'] or 'TRUE'} GROUP BY 1, 2)"""
        )
    rows = con.execute(" UNION ALL ".join(parts)).fetchall()
    events = sum(
        con.execute(f"SELECT count(*) FROM events_{s}").fetchone()[0] for s in spec["sources"]
        if os.path.isdir(os.path.join(archive, "events", f"source={s}"))
    )
    return events, rows


def polars_mode(archive, spec):
    import polars as pl

    chains = pl.DataFrame(spec["chains"], schema=["region", "ancestor"], orient="row").lazy()
    shift = f"{spec['zone_offset_ms'] // 1000}s"
    frames = []
    for i in spec["indicators"]:
        e = pl.scan_parquet(parquet_glob(archive, i["source"]), hive_partitioning=False)
        if i["filter_sql"]:
            e = e.filter(pl.sql_expr(i["filter_sql"]))
        hop = f"{i['hop_s']}s"
        binned = (
            e.join(chains, on="region")
            .with_columns(
                pl.col("ts").dt.offset_by(shift).dt.truncate(hop).dt.offset_by("-" + shift).alias("bin")
            )
            .group_by(["ancestor", "bin"])
            .agg(pl.len().alias("n"))
            .sort(["ancestor", "bin"])
        )
        windowed = (
            binned.rolling(index_column="bin", period=f"{i['window_s']}s", group_by="ancestor", closed="right")
            .agg(pl.col("n").sum().alias("value"))
            .select(
                pl.lit(i["id"]).alias("indicator"),
                pl.col("ancestor").alias("region"),
                pl.col("bin").dt.epoch("s").alias("bin"),
                pl.col("value").cast(pl.Int64),
            )
        )
        frames.append(windowed)
    out = pl.concat(frames).collect()
    events = sum(
        pl.scan_parquet(parquet_glob(archive, s), hive_partitioning=False).select(pl.len()).collect().item()
        for s in spec["sources"]
        if os.path.isdir(os.path.join(archive, "events", f"source={s}"))
    )
    return events, out.rows()


def datafusion_mode(archive, spec):
    import datafusion
    import pyarrow as pa

    ctx = datafusion.SessionContext()
    ctx.register_record_batches(
        "chains",
        [[pa.record_batch([pa.array([c[0] for c in spec["chains"]]), pa.array([c[1] for c in spec["chains"]])],
                          names=["region", "ancestor"])]],
    )
    for s in {i["source"] for i in spec["indicators"]}:
        ctx.register_parquet(f"events_{s}", os.path.join(archive, "events", f"source={s}") + "/",
                             file_extension=".parquet", table_partition_cols=[("date", pa.string())])
    origin = origin_utc(spec).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = []
    for i in spec["indicators"]:
        frame = i["window_s"] - i["hop_s"]
        parts.append(
            f"""SELECT '{i['id']}' AS indicator, region, CAST(to_unixtime(bin) AS BIGINT) AS bin,
                   CAST(sum(n) OVER (PARTITION BY region ORDER BY bin
                        RANGE BETWEEN INTERVAL '{frame} seconds' PRECEDING AND CURRENT ROW) AS BIGINT) AS value
                FROM (SELECT c.ancestor AS region,
                             date_bin(INTERVAL '{i['hop_s']} seconds', e.ts, TIMESTAMP '{origin}') AS bin,
                             count(*) AS n
                      FROM events_{i['source']} e JOIN chains c ON e.region = c.region
                      WHERE {i['filter_sql'] or 'TRUE'} GROUP BY 1, 2)"""
        )
    table = ctx.sql(" UNION ALL ".join(parts)).to_arrow_table()
    rows = list(zip(*(table.column(k).to_pylist() for k in ["indicator", "region", "bin", "value"])))
    events = 0
    for s in spec["sources"]:
        if os.path.isdir(os.path.join(archive, "events", f"source={s}")):
            if s not in {i["source"] for i in spec["indicators"]}:
                ctx.register_parquet(f"events_{s}", os.path.join(archive, "events", f"source={s}") + "/",
                                     file_extension=".parquet", table_partition_cols=[("date", pa.string())])
            events += ctx.sql(f"SELECT count(*) AS n FROM events_{s}").to_pydict()["n"][0]
    return events, rows


# DuckDB's column types in Flink SQL (the archive's event columns use these alone).
FLINK_TYPES = {"VARCHAR": "STRING", "BIGINT": "BIGINT", "INTEGER": "INT", "DOUBLE": "DOUBLE",
               "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN"}


def flink_export(archive, spec, work):
    """Each source's events as CSV for Flink (ts as epoch milliseconds), once per archive, and
    their columns as Flink types; returns {source: (directory, [(column, type)])}."""
    import duckdb

    con = duckdb.connect()
    out = {}
    for s in spec["sources"]:
        if not os.path.isdir(os.path.join(archive, "events", f"source={s}")):
            continue
        select = (f"SELECT * REPLACE (epoch_ms(ts) AS ts) FROM read_parquet('{parquet_glob(archive, s)}', "
                  "hive_partitioning = false)")
        cols = [(c[0], FLINK_TYPES[c[1]]) for c in con.execute(f"DESCRIBE {select}").fetchall()]
        d = os.path.join(work, "flink-csv", os.path.basename(os.path.dirname(archive)), s)
        if not os.path.isfile(os.path.join(d, "events.csv")):
            os.makedirs(d, exist_ok=True)
            con.execute(f"COPY ({select}) TO '{os.path.join(d, 'events.csv')}' (HEADER false)")
        out[s] = (d, cols)
    return out


def flink_mode(spec, tables, out_dir):
    """The windowed counts in Flink SQL, batch mode, parallelism 1, written to CSV under out_dir."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.exec.resource.default-parallelism", "1")
    for s, (d, cols) in tables.items():
        columns = ", ".join(f"`{c}` {t}" for c, t in cols)
        env.execute_sql(f"CREATE TABLE events_{s} ({columns}) WITH ('connector' = 'filesystem', "
                        f"'path' = '{d}', 'format' = 'csv', 'csv.null-literal' = '')")
    chains = ", ".join(f"('{r}', '{a}')" for r, a in spec["chains"])
    env.execute_sql(f"CREATE TEMPORARY VIEW chains AS SELECT * FROM (VALUES {chains}) AS t(region, ancestor)")
    env.execute_sql(f"CREATE TABLE sink (`indicator` STRING, `region` STRING, `bin` BIGINT, `value` BIGINT) WITH "
                    f"('connector' = 'filesystem', 'path' = '{out_dir}', 'format' = 'csv')")
    off = spec["zone_offset_ms"] // 1000
    parts = []
    for i in spec["indicators"]:
        hop, frame = i["hop_s"], i["window_s"] - i["hop_s"]
        # Local bins of a fixed-offset zone, in epoch seconds: integer arithmetic, no time zone.
        bin_expr = f"(FLOOR((e.ts / 1000 + {off}) / {hop}.0) * {hop} - {off})"
        parts.append(
            f"""SELECT '{i['id']}', region, bin,
                   SUM(n) OVER (PARTITION BY region ORDER BY bin
                                RANGE BETWEEN {frame} PRECEDING AND CURRENT ROW)
                FROM (SELECT c.ancestor AS region, CAST({bin_expr} AS BIGINT) AS bin, COUNT(*) AS n
                      FROM events_{i['source']} e JOIN chains c ON e.region = c.region
                      WHERE {i['filter_sql'] or 'TRUE'} GROUP BY c.ancestor, CAST({bin_expr} AS BIGINT))"""
        )
    env.execute_sql("INSERT INTO sink " + " UNION ALL ".join(parts)).wait()
    events = 0
    for s, (d, _) in tables.items():
        with env.execute_sql(f"SELECT COUNT(*) FROM events_{s}").collect() as rows:
            events += next(iter(rows))[0]
    return events


def read_csv_rows(out_dir):
    import csv

    rows = []
    for root, _, files in os.walk(out_dir):
        for name in files:
            if name.startswith("."):
                continue
            with open(os.path.join(root, name), newline="") as f:
                rows.extend((r[0], r[1], int(r[2]), int(r[3])) for r in csv.reader(f))
    return rows


def child(mode, archive, spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    t0 = time.perf_counter()
    if mode == "duckdb-1":
        events, rows = duckdb_mode(archive, spec, 1)
    elif mode == "duckdb-all":
        events, rows = duckdb_mode(archive, spec, os.cpu_count())
    elif mode in ("polars-1", "polars-all"):
        events, rows = polars_mode(archive, spec)
    elif mode == "datafusion-all":
        events, rows = datafusion_mode(archive, spec)
    elif mode == "flink-1":
        with open(spec_path + ".flink") as f:
            tables = json.load(f)
        sink = out_path + ".rows"
        subprocess.run(["rm", "-rf", sink], check=True)
        events = flink_mode(spec, tables, sink)
        query = time.perf_counter() - t0
        rows = read_csv_rows(sink)
        with open(out_path, "w") as f:
            json.dump({"events": events, "query_s": query, **digest(rows)}, f)
        return
    else:
        raise SystemExit(f"unknown mode {mode}")
    # The engine's own time: reading, computing and handing the rows to Python (not the
    # interpreter's start, the imports, or the digest below).
    query = time.perf_counter() - t0
    with open(out_path, "w") as f:
        json.dump({"events": events, "query_s": query, **digest((r[0], r[1], int(r[2]), int(r[3])) for r in rows)}, f)


def measure(cmd, env=None):
    """Runs cmd as a child; returns (wall s, CPU s, peak RSS MiB, its stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--rules", default=os.path.join(ROOT, "rules"))
    ap.add_argument("--volumes", default="1,10")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--work", default="/tmp/vigil-peers")
    ap.add_argument("--modes", default="vigil,duckdb-1,polars-1,duckdb-all,polars-all,datafusion-all")
    ap.add_argument("--record", help="append the results to this markdown file")
    ap.add_argument("--flink-python", default=sys.executable,
                    help="the python of an environment with apache-flink, for mode flink-1")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "ARCHIVE", "SPEC", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return

    os.makedirs(a.work, exist_ok=True)
    spec = spec_of(a.vigil, a.rules)
    spec_path = os.path.join(a.work, "windows.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    sections = []
    for volume in [float(v) for v in a.volumes.split(",")]:
        archive = os.path.join(a.work, f"city-x{volume:g}", "archive")
        if not os.path.isdir(os.path.join(archive, "events")):
            subprocess.run([a.vigil, "gen", "--days", str(a.days), "--seed", "7", "--volume", str(volume),
                            "--rules", a.rules, "--archive", archive], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        results = []
        digests = {}
        for mode in a.modes.split(","):
            env = dict(os.environ)
            if mode == "vigil":
                out_dir = os.path.join(a.work, "replay-out")
                cmd = [a.vigil, "replay", "--rules", a.rules, "--events", archive, "--out", out_dir,
                       "--scores", "none"]
                wall, cpu, rss, err = measure(cmd, env)
                # The replay prints its summary as pretty JSON on stderr, then a closing line.
                lines = err.splitlines()
                start = lines.index("{")
                summary = json.loads("\n".join(lines[start:lines.index("}", start) + 1]))
                events = summary["accepted"] + summary.get("accepted_late", 0)
                took = next(l for l in lines if l.startswith("replayed in "))
                query = float(took.split()[2].rstrip("s;"))
                results.append((mode, wall, cpu, rss, events, "all 60 indicators, scores, alerts", query))
                continue
            if mode.endswith("-1"):
                env["POLARS_MAX_THREADS"] = "1"
            out = os.path.join(a.work, f"{mode}.json")
            python = sys.executable
            if mode == "flink-1":
                with open(spec_path + ".flink", "w") as f:
                    json.dump(flink_export(archive, spec, a.work), f)
                python = a.flink_python
            wall, cpu, rss, _ = measure([python, os.path.abspath(__file__), "--child", mode, archive,
                                         spec_path, out], env)
            with open(out) as f:
                d = json.load(f)
            digests[mode] = (d["rows"], d["total"], d["sha256"])
            results.append((mode, wall, cpu, rss, d["events"], f"{d['rows']} windows, digest {d['sha256']}",
                            d["query_s"]))
        distinct = set(digests.values())
        if len(distinct) > 1:
            raise SystemExit(f"the peers disagree: {digests}")
        sections.append((volume, results, distinct))
        print(f"volume x{volume:g}:")
        for r in results:
            print(f"  {r[0]:<15} wall {r[1]:7.2f} s  own {r[6]:7.2f} s  CPU {r[2]:7.2f} s  "
                  f"{r[4] / r[6]:10.0f} events/s  peak {r[3]:7.1f} MiB  {r[5]}")

    if a.record:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        default_rules = os.path.realpath(a.rules) == os.path.realpath(os.path.join(ROOT, "rules"))
        rules_arg = "" if default_rules else f" --rules {a.rules} --modes {a.modes}"
        lines = [f"\n## peers, {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}\n",
                 f"Machine: {cpu}, {os.cpu_count()} cores. `python3 benches/peers/run.py --volumes {a.volumes} "
                 f"--days {a.days}{rules_arg}`; vigil {os.path.relpath(a.vigil, ROOT)}. DuckDB, Polars and DataFusion compute the windowed "
                 f"counts of {len(spec['indicators'])} count indicators; vigil replays everything.\n"]
        for volume, results, distinct in sections:
            events = max(r[4] for r in results)
            lines.append(f"\n### {a.days} days of the synthetic city at x{volume:g} the default rate "
                         f"({events} events, {len(spec['regions'])} regions)\n")
            lines.append("| mode | process wall (s) | own time (s) | process CPU (s) | events/s (own time) | "
                         "events per CPU-second | peak RSS (MiB) | output |")
            lines.append("|---|---|---|---|---|---|---|---|")
            for r in results:
                lines.append(f"| {r[0]} | {r[1]:.2f} | {r[6]:.2f} | {r[2]:.2f} | {r[4] / r[6]:.0f} | "
                             f"{r[4] / max(r[2], 1e-9):.0f} | {r[3]:.1f} | {r[5]} |")
            vig = next((r for r in results if r[0] == "vigil"), None)
            single = [r for r in results if r[0].endswith("-1")]
            if vig and single:
                best = min(single, key=lambda r: r[6])
                lines.append(f"\nvigil's whole pipeline took {vig[6] / best[6]:.2f}x the own time of the fastest "
                             f"single-threaded peer ({best[0]}) computing only the counts ({vig[1] / min(r[1] for r in single):.2f}x "
                             f"process wall); every peer's rows agree "
                             f"({', '.join(sorted({d[2] for d in distinct}))}).")
        with open(a.record, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
