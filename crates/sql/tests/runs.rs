//! An archive's interval files judged by the runs that wrote them: a run killed between
//! committing an interval's files and landing its checkpoint leaves files no checkpoint covers,
//! on its own disk, while the next owner of its task archives the same positions anew on
//! another. Rewinding either disk by the task's newest checkpoint's log leaves every event once
//! in the two together; running writers are never touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Int64Array;
use vigil_core::{Archive, ArchiveLog, Position};
use vigil_model::Event;
use vigil_rules::RuleSet;
use vigil_sql::archive::{ArchiveWriter, Mode, Tables};
use vigil_sql::query::History;
use vigil_sql::writers::WRITERS;

const TAG: &str = "engine-g_task-0";

fn rules() -> Arc<RuleSet> {
    Arc::new(vigil_rules::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap())
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("runs-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn writer(root: &Path, rules: &Arc<RuleSet>) -> ArchiveWriter {
    ArchiveWriter::create(root, Arc::clone(rules), Tables { events: true, results: false }, Mode::Append, TAG).unwrap()
}

/// Events number `from..to`, an hour apart: each one's time says which it is.
fn archive_events(w: &mut ArchiveWriter, from: i64, to: i64) {
    for k in from..to {
        let ev = Event { ts: 1_780_000_000_000 + k * 3_600_000, ..Event::default() };
        Archive::event(w, &ev);
    }
    Archive::commit(w).unwrap();
}

fn at(k: u64) -> Position {
    Position { offsets: k, evaluated: 0 }
}

/// The event numbers archived under `roots` together, sorted.
fn archived(roots: &[&Path]) -> Vec<i64> {
    let mut out: Vec<i64> = roots.iter().flat_map(|r| events_of(r)).collect();
    out.sort();
    out
}

fn events_of(root: &Path) -> Vec<i64> {
    if !has_parquet(root) {
        return Vec::new();
    }
    let h = History::open(root).unwrap();
    let batches = h.query("SELECT CAST(ts AS BIGINT) FROM events ORDER BY 1").unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend((0..c.len()).map(|i| (c.value(i) - 1_780_000_000_000) / 3_600_000));
    }
    out
}

fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() { has_parquet(&p) } else { p.extension().is_some_and(|x| x == "parquet") }
    })
}

/// What a run killed by the operating system leaves: its lock file, no longer locked (a run
/// that ends without [`Archive::finished`] leaves the same).
fn kill(w: ArchiveWriter, root: &Path) {
    let token = Archive::writer(&w).unwrap();
    drop(w);
    assert!(root.join(WRITERS).join(format!("{TAG}.{token:016x}")).exists());
}

fn lock_files(root: &Path) -> usize {
    std::fs::read_dir(root.join(WRITERS)).map_or(0, |d| d.count())
}

#[test]
fn a_run_killed_before_its_checkpoint_landed_leaves_nothing_twice_across_disks() {
    let rules = rules();
    let (x, y) = (scratch("x"), scratch("y"));
    // Run A on machine X: interval 0..10 checkpointed at 10, interval 10..15 committed, then
    // killed before the checkpoint at 15 landed.
    let mut a = writer(&x, &rules);
    Archive::begin(&mut a, at(0));
    archive_events(&mut a, 0, 10);
    let mut log = ArchiveLog::default();
    log.record(Archive::writer(&a).unwrap(), at(10));
    Archive::begin(&mut a, at(10));
    archive_events(&mut a, 10, 15);
    kill(a, &x);
    assert_eq!(archived(&[&x]), (0..15).collect::<Vec<_>>());

    // Run B on machine Y resumes from the checkpoint at 10: its disk holds nothing of A's.
    let mut b = writer(&y, &rules);
    assert_eq!(Archive::hold_ended(&mut b).unwrap(), 0);
    assert_eq!(Archive::rewind(&mut b, at(10), &log).unwrap(), 0);
    Archive::begin(&mut b, at(10));
    archive_events(&mut b, 10, 20);
    log.record(Archive::writer(&b).unwrap(), at(20));
    Archive::begin(&mut b, at(20));
    // Together the two disks hold events 10..15 twice until X is judged, and gathering them
    // is refused meanwhile.
    let both = archived(&[&x, &y]);
    assert_eq!(both.len(), 25, "{both:?}");
    let err = vigil_sql::archive::gather(&x, &scratch("union-early")).unwrap_err();
    assert!(err.to_string().contains("1 runs that ended without finishing"), "{err}");

    // X's next start: A's lock file is there and free, so A ended without finishing; judged
    // by the task's newest checkpoint (written by B at 20), A's interval at 10 is not covered.
    let mut sweep = writer(&x, &rules);
    assert_eq!(Archive::hold_ended(&mut sweep).unwrap(), 1, "a killed run is seen, and held");
    // Held, it is no one else's to judge meanwhile.
    assert_eq!(Archive::hold_ended(&mut writer(&x, &rules)).unwrap(), 0);
    let removed = Archive::rewind(&mut sweep, at(20), &log).unwrap();
    assert!(removed > 0, "A's uncovered files removed");
    assert_eq!(Archive::hold_ended(&mut sweep).unwrap(), 0, "and A forgotten");
    assert_eq!(lock_files(&x), 0);
    assert_eq!(archived(&[&x]), (0..10).collect::<Vec<_>>(), "what A's checkpoint covered stays");
    assert_eq!(archived(&[&x, &y]), (0..20).collect::<Vec<_>>(), "every event once");
    // Judged, the two disks gather into one archive that holds them once.
    let union = scratch("union");
    for root in [&x, &y] {
        vigil_sql::archive::gather(root, &union).unwrap();
    }
    assert_eq!(events_of(&union), (0..20).collect::<Vec<_>>());
    // Judging again changes nothing.
    let mut again = writer(&x, &rules);
    Archive::hold_ended(&mut again).unwrap();
    assert_eq!(Archive::rewind(&mut again, at(20), &log).unwrap(), 0);
    // B finishes cleanly: its lock file goes, nothing of it is left to judge.
    Archive::finished(&mut b);
    drop(b);
    assert_eq!(lock_files(&y), 0);
}

#[test]
fn running_and_finished_runs_are_never_judged() {
    let rules = rules();
    let root = scratch("live");
    // Run C is running (its lock held) in an interval no checkpoint covers.
    let mut c = writer(&root, &rules);
    Archive::begin(&mut c, at(0));
    archive_events(&mut c, 0, 5);
    // Another driver of the same tag rewinds the shared directory with a log that knows
    // nothing of C: C's files stay.
    let mut other = writer(&root, &rules);
    assert_eq!(Archive::hold_ended(&mut other).unwrap(), 0, "a running writer has not ended");
    assert_eq!(Archive::rewind(&mut other, at(0), &ArchiveLog::default()).unwrap(), 0);
    assert_eq!(archived(&[&root]), (0..5).collect::<Vec<_>>());
    // Finished (its last checkpoint landed), C removes its lock file, and its files are its
    // last checkpoint's: no log judges them again, even one that does not know C.
    Archive::finished(&mut c);
    drop(c);
    assert_eq!(lock_files(&root), 0, "a finished run leaves no lock file");
    assert_eq!(Archive::hold_ended(&mut other).unwrap(), 0);
    assert_eq!(Archive::rewind(&mut other, at(0), &ArchiveLog::default()).unwrap(), 0);
    assert_eq!(archived(&[&root]), (0..5).collect::<Vec<_>>());
}

#[test]
fn a_log_that_dropped_old_runs_keeps_their_files_before_the_position_resumed() {
    let rules = rules();
    let root = scratch("trimmed");
    let mut a = writer(&root, &rules);
    Archive::begin(&mut a, at(0));
    archive_events(&mut a, 0, 4);
    Archive::begin(&mut a, at(4));
    archive_events(&mut a, 4, 8);
    kill(a, &root);
    // A log of later runs only, with A dropped long ago.
    let mut log = ArchiveLog::default();
    for w in 1..=(ArchiveLog::MAX as u64 + 1) {
        log.record(w, at(4 + w));
    }
    assert!(log.trimmed && log.writers.len() == ArchiveLog::MAX);
    // Resuming from 4: A's interval at 0 may have been covered and stays; the one at 4 cannot be.
    let mut b = writer(&root, &rules);
    assert_eq!(Archive::hold_ended(&mut b).unwrap(), 1);
    Archive::rewind(&mut b, at(4), &log).unwrap();
    assert_eq!(archived(&[&root]), (0..4).collect::<Vec<_>>());
}
