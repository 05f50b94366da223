//! User-space throughput: decoding of raw ring-buffer records, aggregation and JSON-lines
//! rendering, on a synthetic stream shaped like a `chown -R` over an image layer. The goal
//! is at least 5 million events per second on one core.
//!
//! Every record of the stream counts as one element (about 95% copy-ups, 5% op-done
//! records), so criterion's elements/s are events/s.

use std::{
    collections::HashSet, fs, hint::black_box, io, ops::Range, os::unix::fs::MetadataExt,
    path::PathBuf, time::Duration,
};

use copyup_trace::{
    attribution::cgroups::CgroupResolver,
    attribution::mounts::OverlayMounts,
    events::decode::{self, Decoded, Decoder, Record},
    events::enrich::Enricher,
    output::aggregate::Aggregate,
    output::render,
};
use copyup_trace_common::{
    flags,
    kabi::{
        ATTR_CTIME, ATTR_GID, ATTR_MODE, ATTR_MTIME, ATTR_UID, AT_SYMLINK_NOFOLLOW, O_TRUNC,
        O_WRONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
    },
    op, record, CopyUpEvent, OpDoneEvent,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const COPY_UPS: usize = 10_000;
const PATHS: usize = 2_000;
const PIDS: usize = 50;
/// One op-done record per this many copy-ups, on average.
const OP_DONE_EVERY: u64 = 20;

/// xorshift64*: fixed seed, so every run decodes the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Log-uniform in `lo..hi`: latencies and sizes span orders of magnitude.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo as f64 * (hi as f64 / lo as f64).powf(u)) as u64
    }

    fn hex(&mut self, digits: usize) -> String {
        (0..digits)
            .map(|_| char::from_digit(self.below(16) as u32, 16).expect("digit below 16"))
            .collect()
    }
}

const ENOSPC: i32 = 28;

struct Object {
    /// Components root first, as a user would write the path.
    components: Vec<String>,
    mode: u32,
}

/// Distinct paths of depth 3 to 6 in an image-like tree (`/usr/lib/x86_64-linux-gnu/...`).
fn objects(rng: &mut Rng) -> Vec<Object> {
    const LEVELS: [&[&str]; 5] = [
        &["usr", "etc", "var", "opt"],
        &["lib", "share", "bin", "include", "local", "libexec"],
        &[
            "x86_64-linux-gnu",
            "python3.11",
            "perl5",
            "locale",
            "doc",
            "man",
            "gcc",
            "dist-packages",
        ],
        &[
            "site-packages",
            "LC_MESSAGES",
            "man1",
            "gconv",
            "encodings",
            "plugins",
            "modules",
            "12",
        ],
        &["__pycache__", "tests", "data", "aux"],
    ];
    const STEMS: [&str; 10] = [
        "libfoo",
        "libssl",
        "libcrypto",
        "libz",
        "libstdc++",
        "libgcc_s",
        "libpython3.11",
        "libsystemd",
        "libudev",
        "libffi",
    ];
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(PATHS);
    while out.len() < PATHS {
        let depth = 3 + rng.below(4) as usize;
        let mut components: Vec<String> = LEVELS[..depth - 1]
            .iter()
            .map(|level| rng.pick(level).to_string())
            .collect();
        let n = rng.below(1000);
        let (leaf, mode) = match rng.below(100) {
            0..12 => (format!("pkg{n}"), S_IFDIR | 0o755),
            12..20 => (format!("{}.so", rng.pick(&STEMS)), S_IFLNK | 0o777),
            _ => (format!("{}.so.{n}", rng.pick(&STEMS)), S_IFREG | 0o644),
        };
        components.push(leaf);
        if seen.insert(components.clone()) {
            out.push(Object { components, mode });
        }
    }
    out
}

/// Raw records laid out back to back, 8-byte aligned as in the BPF ring buffer.
struct Stream {
    buf: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Stream {
    fn push<T: aya::Pod>(&mut self, rec: &T) {
        // SAFETY: `T: Pod` is a #[repr(C)] record without padding: these are the bytes the
        // kernel side copies into the ring.
        let bytes =
            unsafe { std::slice::from_raw_parts((rec as *const T).cast::<u8>(), size_of::<T>()) };
        self.push_bytes(bytes);
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.spans.push(start..self.buf.len());
        self.buf.resize(self.buf.len().next_multiple_of(8), 0);
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|r| &self.buf[r.clone()])
    }

    fn len(&self) -> u64 {
        self.spans.len() as u64
    }
}

fn copy_cstr(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&src[..n]);
}

/// The stream of a tree-wide chown, plus opens for write, chmods, xattr and directory
/// operations, from `PIDS` processes spread over the given cgroups, all on overlay `dev`.
fn stream(rng: &mut Rng, cgroup_ids: &[u64], dev: u32) -> Stream {
    const COMMS: [&str; 8] = [
        "chown", "dpkg", "python3", "apt-get", "sh", "cp", "node", "java",
    ];
    let objects = objects(rng);
    let pids: Vec<u32> = (0..PIDS as u32).map(|i| 1000 + 37 * i).collect();
    let mut s = Stream {
        buf: Vec::new(),
        spans: Vec::new(),
    };
    let mut now: u64 = 1_000_000_000;
    for _ in 0..COPY_UPS {
        let obj = rng.pick(&objects);
        let p = rng.below(PIDS as u64) as usize;
        // SAFETY: plain old data; all-zero is a valid record.
        let mut ev: CopyUpEvent = unsafe { std::mem::zeroed() };
        ev.header.record = record::COPY_UP;
        now += rng.below(200_000);
        ev.header.start_ns = now;
        ev.header.pid = pids[p];
        ev.header.tid = pids[p] + rng.below(4) as u32;
        ev.header.ppid = 1 + p as u32;
        ev.header.cgroup_id = cgroup_ids[p % cgroup_ids.len()];
        ev.header.dev = dev;
        ev.header.mode = obj.mode;
        copy_cstr(&mut ev.header.comm, COMMS[p % COMMS.len()].as_bytes());

        let mut off = 0;
        for c in obj.components.iter().rev() {
            ev.names[off..off + c.len()].copy_from_slice(c.as_bytes());
            off += c.len() + 1;
        }
        ev.header.depth = obj.components.len() as u32;
        ev.header.path_len = off as u32;

        ev.header.size = match obj.mode & S_IFMT {
            S_IFREG => rng.log_uniform(1, 16 << 20) - 1,
            S_IFDIR => 4096,
            _ => 8 + rng.below(40),
        };
        ev.header.copy_ns = rng.log_uniform(10_000, 50_000_000);
        let cause = now - rng.below(20_000);
        match rng.below(100) {
            0..50 => {
                ev.header.flags = flags::IN_FCHOWNAT | flags::HAS_FILENAME;
                ev.header.op = op::SETATTR;
                ev.header.ia_valid = ATTR_UID | ATTR_GID | ATTR_CTIME;
                ev.header.syscall_start_ns = cause;
                ev.header.syscall_flag = if obj.mode & S_IFMT == S_IFLNK {
                    AT_SYMLINK_NOFOLLOW
                } else {
                    0
                };
                let filename = format!("/{}", obj.components.join("/"));
                let at = off;
                ev.names[at..at + filename.len()].copy_from_slice(filename.as_bytes());
                ev.header.filename_len = filename.len() as u32 + 1;
            }
            50..70 => {
                ev.header.op = op::OPEN;
                ev.header.copy_flags = if rng.percent(20) {
                    O_WRONLY | O_TRUNC
                } else {
                    O_WRONLY
                };
                ev.header.op_start_ns = cause;
            }
            70..80 => {
                ev.header.op = op::SETATTR;
                ev.header.ia_valid = ATTR_MODE | ATTR_CTIME;
                ev.header.op_start_ns = cause;
            }
            80..88 => {
                ev.header.op = op::SETXATTR;
                ev.header.op_start_ns = cause;
            }
            88..95 => {
                ev.header.op = *rng.pick(&[op::CREATE, op::RENAME, op::UNLINK, op::MKDIR]);
                ev.header.op_start_ns = cause;
            }
            _ => {
                ev.header.op = op::SETATTR;
                ev.header.ia_valid = ATTR_MTIME | ATTR_CTIME;
                ev.header.op_start_ns = cause;
            }
        }
        if rng.percent(2) {
            ev.header.flags |= flags::WAITED;
        } else if obj.mode & S_IFMT == S_IFREG && ev.header.copy_flags & O_TRUNC == 0 {
            // Some overlays run with metacopy=on: no data until the first write-open.
            if !rng.percent(10) {
                ev.header.bytes = ev.header.size;
                ev.header.data_ns = ev.header.copy_ns / 4 * 3;
            }
        }
        if rng.percent(1) {
            ev.header.ret = -ENOSPC;
        }
        // Only the header and the used names travel, as from the kernel side.
        s.push_bytes(decode::wire_bytes(&ev));

        if rng.below(OP_DONE_EVERY) == 0 {
            let in_chown = ev.header.flags & flags::IN_FCHOWNAT != 0;
            s.push(&OpDoneEvent {
                record: record::OP_DONE,
                op: if in_chown { op::FCHOWNAT } else { ev.header.op },
                start_ns: cause,
                duration_ns: ev.header.copy_ns + rng.below(50_000),
                pid: ev.header.pid,
                tid: ev.header.tid,
                copy_ups: 1,
                ret: ev.header.ret,
                ia_valid: ev.header.ia_valid,
                flags: if in_chown {
                    ev.header.syscall_flag
                } else {
                    ev.header.copy_flags
                },
            });
        }
    }
    s
}

/// A throwaway cgroup2-like tree and mountinfo file, so that the mount and cgroup
/// resolvers answer from their caches as in a long session. Removed on drop.
struct Fixture {
    dir: PathBuf,
    cgroup_root: PathBuf,
    mountinfo: PathBuf,
    cgroup_ids: Vec<u64>,
    /// Kernel encoding of the overlay's device, as `CopyUpEvent::dev`.
    dev: u32,
}

impl Fixture {
    fn new(rng: &mut Rng) -> io::Result<Fixture> {
        let dir = std::env::temp_dir().join(format!("copyup-bench-{}", std::process::id()));
        let cgroup_root = dir.join("cgroup");
        let mut cgroup_paths = vec![
            "user.slice/user-1000.slice/session-3.scope".to_string(),
            "system.slice/buildkit.service".to_string(),
        ];
        for _ in 0..3 {
            cgroup_paths.push(format!("system.slice/docker-{}.scope", rng.hex(64)));
        }
        for _ in 0..2 {
            cgroup_paths.push(format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
                rng.hex(32),
                rng.hex(64)
            ));
        }
        let mut cgroup_ids = Vec::new();
        for p in &cgroup_paths {
            let d = cgroup_root.join(p);
            fs::create_dir_all(&d)?;
            cgroup_ids.push(fs::metadata(&d)?.ino());
        }

        // Where docker would mount a container's root.
        let merged = dir.join(format!("overlay2/{}/merged", rng.hex(64)));
        fs::create_dir_all(&merged)?;
        let st_dev = fs::metadata(&merged)?.dev();
        let (major, minor) = (libc::major(st_dev), libc::minor(st_dev));
        let mountinfo = dir.join("mountinfo");
        fs::write(
            &mountinfo,
            format!(
                "512 22 {major}:{minor} / {} rw,relatime shared:280 - overlay overlay \
                 rw,lowerdir=/l/A:/l/B,upperdir=/u,workdir=/w\n",
                merged.display()
            ),
        )?;
        Ok(Fixture {
            dir,
            cgroup_root,
            mountinfo,
            cgroup_ids,
            dev: (major << 20) | minor,
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn check(s: &Stream, enricher: &mut Enricher) {
    let (mut copy_ups, mut ops, mut containers) = (0, 0, 0);
    for raw in s.records() {
        match decode::decode(raw).expect("synthetic record decodes") {
            Record::CopyUp(mut c) => {
                let depth = c.path.iter().filter(|&&b| b == b'/').count();
                assert!((3..=6).contains(&depth), "path depth {depth}");
                enricher.enrich(&mut c);
                assert!(c.mount.is_some(), "overlay mount resolved");
                containers += c.container.is_some() as usize;
                copy_ups += 1;
            }
            Record::OpDone(_) => ops += 1,
            Record::Cgroup(_) => {}
        }
    }
    assert_eq!(copy_ups, COPY_UPS);
    assert!(ops > 0 && containers > 0);
}

fn pipeline(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let fixture = Fixture::new(&mut rng).expect("creating the cgroup and mount fixture");
    let s = stream(&mut rng, &fixture.cgroup_ids, fixture.dev);
    // As the session enriches: mount point, cgroup path and container, cached.
    let mut enricher = Enricher::new(
        Some(OverlayMounts::load_from(&fixture.mountinfo).expect("reading the fixture")),
        CgroupResolver::new(&fixture.cgroup_root),
    );
    check(&s, &mut enricher);

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(s.len()));

    // As the session decodes: one reused `Decoder`, no allocation per event.
    let mut decoder = Decoder::default();
    g.bench_function("decode", |b| {
        b.iter(|| {
            for raw in s.records() {
                match decoder.decode(black_box(raw)).expect("decodes") {
                    Decoded::CopyUp(c) => {
                        black_box(c);
                    }
                    Decoded::OpDone(d) => {
                        black_box(d);
                    }
                    Decoded::Cgroup(m) => {
                        black_box(m);
                    }
                }
            }
        })
    });

    g.bench_function("decode+aggregate", |b| {
        b.iter(|| {
            let mut agg = Aggregate::default();
            for raw in s.records() {
                match decoder.decode(black_box(raw)).expect("decodes") {
                    Decoded::CopyUp(c) => agg.add(c),
                    Decoded::OpDone(d) => agg.add_op(&d),
                    Decoded::Cgroup(_) => {}
                }
            }
            black_box(agg)
        })
    });

    // As `-o json`, into memory rather than a pipe: the cost of rendering, not of write(2).
    let mut out = Vec::with_capacity(4096);
    g.bench_function("decode+aggregate+json", |b| {
        b.iter(|| {
            let mut agg = Aggregate::default();
            for raw in s.records() {
                out.clear();
                match decoder.decode(black_box(raw)).expect("decodes") {
                    Decoded::CopyUp(c) => {
                        render::json_event(&mut out, c).expect("renders");
                        agg.add(c);
                    }
                    Decoded::OpDone(d) => {
                        render::json_op(&mut out, &d).expect("renders");
                        agg.add_op(&d);
                    }
                    Decoded::Cgroup(_) => {}
                }
                black_box(&out);
            }
            black_box(agg)
        })
    });

    // Resolvers stay warm across iterations, as in a running session; paths become absolute
    // and container rows are keyed by container id.
    g.bench_function("decode+enrich+aggregate", |b| {
        b.iter(|| {
            let mut agg = Aggregate::default();
            for raw in s.records() {
                match decoder.decode(black_box(raw)).expect("decodes") {
                    Decoded::CopyUp(c) => {
                        enricher.enrich(c);
                        agg.add(c);
                    }
                    Decoded::OpDone(d) => agg.add_op(&d),
                    Decoded::Cgroup(_) => {}
                }
            }
            black_box(agg)
        })
    });
    g.finish();
    drop(fixture);
}

fn config() -> Criterion {
    // Two-core machines: a few seconds per benchmark keeps the whole run near a minute.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = pipeline
}
criterion_main!(benches);
