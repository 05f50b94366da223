//! Runs inside the test guests: performs one filesystem operation through the exact
//! syscall a test needs (busybox has no fchown, truncate(2) or xattr tools), or many
//! concurrent copy-ups from separate threads, or an operation under a chosen pid; lists
//! and probes what BPF the kernel has, and counts a map's entries; stands in for a
//! runtime that never answers. It only acts and prints; the host judges.

mod fexit_probe;

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    os::{
        fd::{AsFd, AsRawFd},
        unix::{ffi::OsStrExt, fs::fchown},
    },
    path::Path,
};

fn cpath(p: &str) -> CString {
    CString::new(Path::new(p).as_os_str().as_bytes()).expect("path without NUL")
}

fn check(what: &str, rc: libc::c_int) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    }
}

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // CLOCK_MONOTONIC cannot fail with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "missing argument".to_string())
    };
    match arg(0)? {
        // fchown PATH [UID GID]: fchown(2) (to 1000:1000 by default) on a read-only
        // descriptor: no do_fchownat on this path.
        "fchown" => {
            let f = File::open(arg(1)?).map_err(|e| e.to_string())?;
            let id = |i: usize| -> Result<u32, String> {
                match args.get(i) {
                    Some(v) => v.parse().map_err(|_| format!("bad id {v:?}")),
                    None => Ok(1000),
                }
            };
            fchown(&f, Some(id(2)?), Some(id(3)?)).map_err(|e| e.to_string())
        }
        // truncate(2) by path: setattr with ATTR_SIZE.
        "truncate" => {
            let len: i64 = arg(2)?.parse().map_err(|_| "bad length")?;
            check("truncate", unsafe {
                libc::truncate(cpath(arg(1)?).as_ptr(), len)
            })
        }
        "open-write" => OpenOptions::new()
            .write(true)
            .open(arg(1)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        "setxattr" => {
            let (name, value) = (CString::new(arg(2)?).unwrap(), arg(3)?);
            check("setxattr", unsafe {
                libc::setxattr(
                    cpath(arg(1)?).as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            })
        }
        "removexattr" => {
            let name = CString::new(arg(2)?).unwrap();
            check("removexattr", unsafe {
                libc::removexattr(cpath(arg(1)?).as_ptr(), name.as_ptr())
            })
        }
        // threads N PREFIX: thread i chowns PREFIX<i>, all released at once.
        // threads N PREFIX [chown|open-write|chmod]: thread i copies up PREFIXi.
        "threads" => {
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let prefix = arg(2)?.to_string();
            let op = args.get(3).cloned().unwrap_or_else(|| "chown".into());
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let (b, p) = (barrier.clone(), format!("{prefix}{i}"));
                    let op = op.clone();
                    std::thread::spawn(move || {
                        b.wait();
                        let tid = unsafe { libc::gettid() };
                        let c = cpath(&p);
                        let rc = match op.as_str() {
                            "open-write" => match unsafe { libc::open(c.as_ptr(), libc::O_WRONLY) }
                            {
                                fd if fd >= 0 => unsafe { libc::close(fd) },
                                _ => -1,
                            },
                            "chmod" => unsafe { libc::chmod(c.as_ptr(), 0o600) },
                            _ => unsafe { libc::chown(c.as_ptr(), 1000, 1000) },
                        };
                        (p, tid, rc)
                    })
                })
                .collect();
            for h in handles {
                let (p, tid, rc) = h.join().map_err(|_| "thread panicked")?;
                // The host side checks that each copy-up is attributed to this tid. On
                // stderr: stdout belongs to the tracer's JSON when run under it.
                eprintln!("{tid} {p} {rc}");
            }
            Ok(())
        }
        // silent-socket PATH: a unix socket that takes connections and never answers (a
        // runtime that hangs), until killed.
        "silent-socket" => {
            let _listener =
                std::os::unix::net::UnixListener::bind(arg(1)?).map_err(|e| e.to_string())?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // mkfiles DIR N SIZE [STEP]: N files, f<i> of SIZE + i * STEP bytes, without a
        // process per file.
        "mkfiles" => {
            let dir = arg(1)?;
            let n: usize = arg(2)?.parse().map_err(|_| "bad count")?;
            let size: usize = arg(3)?.parse().map_err(|_| "bad size")?;
            let step: usize = match args.get(4) {
                Some(s) => s.parse().map_err(|_| "bad step")?,
                None => 0,
            };
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let data = vec![0u8; size + n * step];
            for i in 0..n {
                std::fs::write(format!("{dir}/f{i}"), &data[..size + i * step])
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        // await FILE OP ARGS...: wait until FILE exists, then do OP (in a container whose
        // image has no shell, to start several containers' copy-ups at once).
        "await" => {
            while !Path::new(arg(1)?).exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            run(&args[2..])
        }
        // timed CMD ARGS...: run it, print `elapsed_ns N rc R` on stderr.
        "timed" => {
            let t0 = std::time::Instant::now();
            let st = std::process::Command::new(arg(1)?)
                .args(&args[2..])
                .status()
                .map_err(|e| e.to_string())?;
            eprintln!(
                "elapsed_ns {} rc {}",
                t0.elapsed().as_nanos(),
                st.code().unwrap_or(-1)
            );
            Ok(())
        }
        // now: CLOCK_MONOTONIC in ns, the clock `timed` measures with.
        "now" => {
            println!("{}", monotonic_ns());
            Ok(())
        }
        // wait-for PATTERN FILE: polls FILE every millisecond until it contains PATTERN,
        // then prints CLOCK_MONOTONIC in ns; fails after 300 s.
        "wait-for" => {
            let (pattern, file) = (arg(1)?.as_bytes(), arg(2)?);
            for _ in 0..300_000 {
                let text = std::fs::read(file).unwrap_or_default();
                if text.windows(pattern.len()).any(|w| w == pattern) {
                    println!("{}", monotonic_ns());
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(format!("{file} never showed {}", arg(1)?))
        }
        // Per-program run time and count (needs kernel.bpf_stats_enabled=1).
        "bpf-stats" => {
            for info in aya::programs::loaded_programs() {
                let info = info.map_err(|e| e.to_string())?;
                println!(
                    "{} {} {}",
                    String::from_utf8_lossy(info.name()),
                    info.run_time().as_nanos(),
                    info.run_count()
                );
            }
            Ok(())
        }
        // The verifier's work per loaded program: name, instructions it verified, and
        // the program's size in instructions after translation.
        "bpf-verified" => {
            for info in aya::programs::loaded_programs() {
                let info = info.map_err(|e| e.to_string())?;
                println!(
                    "{} {} {}",
                    String::from_utf8_lossy(info.name()),
                    info.verified_instruction_count().unwrap_or(0),
                    info.size_translated().unwrap_or(0) / 8
                );
            }
            Ok(())
        }
        // bpf-objects [settled]: every BPF program (`prog ID NAME`) and link (`link ID
        // PROG_ID`) in the kernel, one a line; the host picks out ours by name and counts
        // them by id. `settled`: after a tracer has exited, first wait (at most 10 s) for
        // none of ours to be listed: the kernel frees a raw tracepoint's program after a
        // grace period, not when its last descriptor closes.
        "bpf-objects" => {
            if args.get(1).map(String::as_str) == Some("settled") {
                let ours = |name: &[u8]| {
                    copyup_trace_common::hooks::programs().any(|p| {
                        let cut = copyup_trace_common::kabi::BPF_OBJ_NAME_LEN - 1;
                        p.as_bytes()[..p.len().min(cut)] == *name
                    })
                };
                let t0 = std::time::Instant::now();
                while t0.elapsed() < std::time::Duration::from_secs(10)
                    && aya::programs::loaded_programs()
                        .filter_map(Result::ok)
                        .any(|p| ours(p.name()))
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            for info in aya::programs::loaded_programs() {
                match info {
                    Ok(p) => println!("prog {} {}", p.id(), String::from_utf8_lossy(p.name())),
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            for info in aya::programs::loaded_links() {
                match info {
                    Ok(l) => println!("link {} {}", l.id(), l.program_id()),
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        }
        // Whether fexit on ovl_copy_up_one with the helpers the tool needs loads and
        // attaches: `ok` or `no: STEP: WHY`.
        "fexit-probe" => {
            println!("{}", fexit_probe::run()?);
            Ok(())
        }
        // chown-open CHOWNED OPENED: one thread chowns a file, then opens another for
        // writing: two syscalls, each a copy-up, on the same tid.
        "chown-open" => {
            check("chown", unsafe {
                libc::chown(cpath(arg(1)?).as_ptr(), 1000, 1000)
            })?;
            run(&["open-write".into(), arg(2)?.into()])
        }
        // as-pid PID OP ARGS...: runs OP in a child that has pid PID (a freed pid is
        // handed out again: the kernel's next pid is set just below it), to make a new
        // thread reuse an old thread's id.
        "as-pid" => {
            let want: libc::pid_t = arg(1)?.parse().map_err(|_| "bad pid")?;
            for _ in 0..20 {
                std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string())
                    .map_err(|e| format!("ns_last_pid: {e}"))?;
                // SAFETY: the child only runs the operation and exits.
                match unsafe { libc::fork() } {
                    0 => std::process::exit(if unsafe { libc::getpid() } == want {
                        run(&args[2..]).map_or(1, |_| 0)
                    } else {
                        3
                    }),
                    -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
                    child => {
                        let mut status = 0;
                        unsafe { libc::waitpid(child, &mut status, 0) };
                        match (child == want, libc::WEXITSTATUS(status)) {
                            (true, 0) => return Ok(()),
                            (true, rc) => return Err(format!("child exited {rc}")),
                            // Another task took the pid first: try again.
                            (false, _) => continue,
                        }
                    }
                }
            }
            Err(format!("pid {want} not had in 20 forks"))
        }
        // as-user UID CAP[,CAP...] CMD ARGS...: exec CMD as UID (and gid UID, no
        // supplementary groups) holding only the capabilities named by number, in every
        // set including the ambient one, so that CMD keeps them across its exec.
        "as-user" => {
            let uid: libc::uid_t = arg(1)?.parse().map_err(|_| "bad uid")?;
            let caps: Vec<u32> = arg(2)?
                .split(',')
                .map(|c| c.parse().map_err(|_| format!("bad capability {c:?}")))
                .collect::<Result<_, String>>()?;
            let cmd = args.get(3).ok_or("missing command")?;
            let bits: u64 = caps.iter().fold(0, |b, c| b | 1 << c);
            // _LINUX_CAPABILITY_VERSION_3: two 32-bit halves.
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            #[derive(Clone, Copy)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let data = [
                Data {
                    effective: bits as u32,
                    permitted: bits as u32,
                    inheritable: bits as u32,
                },
                Data {
                    effective: (bits >> 32) as u32,
                    permitted: (bits >> 32) as u32,
                    inheritable: (bits >> 32) as u32,
                },
            ];
            let header = Header {
                version: 0x2008_0522,
                pid: 0,
            };
            // SAFETY: plain system calls on values that live through each call.
            unsafe {
                check("keepcaps", libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
                check("setgroups", libc::setgroups(0, std::ptr::null()))?;
                check("setresgid", libc::setresgid(uid, uid, uid))?;
                check("setresuid", libc::setresuid(uid, uid, uid))?;
                check(
                    "capset",
                    libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as i32,
                )?;
                for c in &caps {
                    check(
                        "ambient",
                        libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                            *c as libc::c_ulong,
                            0,
                            0,
                        ),
                    )?;
                }
            }
            use std::os::unix::process::CommandExt;
            Err(std::process::Command::new(cmd)
                .args(&args[4..])
                .exec()
                .to_string())
        }
        // bpf-map-count NAME: how many keys the loaded map NAME holds.
        "bpf-map-count" => {
            let info = aya::maps::loaded_maps()
                .filter_map(Result::ok)
                .find(|m| m.name() == arg(1).unwrap_or("").as_bytes())
                .ok_or_else(|| format!("no map {}", arg(1).unwrap_or("")))?;
            let fd = info.fd().map_err(|e| e.to_string())?;
            println!(
                "{}",
                count_keys(fd.as_fd().as_raw_fd(), info.key_size() as usize)?
            );
            Ok(())
        }
        other => Err(format!("unknown operation {other}")),
    }
}

/// The keys of the map behind `fd`, walked with `BPF_MAP_GET_NEXT_KEY`.
fn count_keys(fd: libc::c_int, key_size: usize) -> Result<usize, String> {
    const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
    let (mut key, mut next) = (vec![0u8; key_size], vec![0u8; key_size]);
    let mut n = 0;
    loop {
        // union bpf_attr for map element commands: map_fd, key, next_key.
        let mut attr = [0u64; 4];
        attr[0] = fd as u64;
        attr[1] = if n == 0 { 0 } else { key.as_ptr() as u64 };
        attr[2] = next.as_mut_ptr() as u64;
        // SAFETY: the attr and both buffers outlive the call; the kernel writes
        // key_size bytes into `next`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(n),
                _ => Err(format!("BPF_MAP_GET_NEXT_KEY: {e}")),
            };
        }
        std::mem::swap(&mut key, &mut next);
        n += 1;
    }
}

/// Whether a listing error means the object went away between its id and its fd.
fn gone(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error() == Some(libc::ENOENT);
        }
        cur = e.source();
    }
    false
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("guest-ops {}: {e}", args.join(" "));
        std::process::exit(1);
    }
}
