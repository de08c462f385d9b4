// SPDX-License-Identifier: MIT
//! A VMM over the loopback, as Firecracker would embed libapf: embedder-completion mode
//! (`n_workers = 0`: the library creates no thread), an I/O thread of the VMM's own that
//! "fetches" missing pages (post-copy: each takes `--latency-us`), and one thread per vCPU
//! whose guest task touches pages that are not present yet. Prints the protocol's
//! statistics, host and guest side, and fails if they disagree.
//!
//!   cargo run --offline --example vmm -- [--vcpus N] [--pages N] [--latency-us N]
//!                                        [--transport x86|arm64|arm64-ring]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use libapf::{Fault, Loopback, LoopbackConfig, Pager, Transport};

const REMOTE: u64 = 0x1_0000_0000; // guest-physical base of the not-yet-present memory
const PAGE: u64 = 4096;

struct Memory {
    present: Vec<AtomicBool>,
}

impl Memory {
    fn index(&self, gpa: u64) -> usize {
        ((gpa - REMOTE) / PAGE) as usize
    }
}

/// The VMM's page source: `submit` hands the work to the I/O thread (never blocks).
struct IoQueue {
    tx: Mutex<Option<mpsc::Sender<(u32, u32, u64)>>>,
}

impl Pager for IoQueue {
    fn submit(&self, vcpu: u32, token: u32, gpa: u64) {
        if let Some(tx) = self.tx.lock().unwrap().as_ref() {
            tx.send((vcpu, token, gpa)).expect("I/O thread gone");
        }
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{}: not a number: {}", name, v)))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_vcpus = arg(&args, "--vcpus", 2) as u32;
    let pages_per_vcpu = arg(&args, "--pages", 256) as usize;
    let latency = Duration::from_micros(arg(&args, "--latency-us", 100));
    let transport = args.iter().position(|a| a == "--transport").and_then(|i| args.get(i + 1)).map(String::as_str);
    let (transport, ring, name) = match transport.unwrap_or("x86") {
        "x86" => (Transport::KvmX86, 0, "kvm_x86"),
        "arm64" => (Transport::KvmArm64, 0, "kvm_arm64 (slot)"),
        "arm64-ring" => (Transport::KvmArm64, 64, "kvm_arm64 (ready ring)"),
        other => panic!("--transport x86|arm64|arm64-ring, not {}", other),
    };

    let mem = Arc::new(Memory {
        present: (0..pages_per_vcpu * n_vcpus as usize).map(|_| AtomicBool::new(false)).collect(),
    });
    let (tx, rx) = mpsc::channel::<(u32, u32, u64)>();
    let queue = Arc::new(IoQueue { tx: Mutex::new(Some(tx)) });
    let mut cfg = LoopbackConfig::new(n_vcpus, transport);
    cfg.n_workers = 0; // embedder completion: no library threads
    cfg.ring_entries = ring;
    let lb = Loopback::new(&cfg, queue.clone()).expect("loopback");

    // The I/O thread: fetch the page, mark it present, complete the token.
    let completer = lb.completer();
    let io_mem = mem.clone();
    let fetched = Arc::new(AtomicU64::new(0));
    let io_fetched = fetched.clone();
    let io = thread::spawn(move || {
        for (vcpu, token, gpa) in rx {
            thread::sleep(latency);
            io_mem.present[io_mem.index(gpa)].store(true, Ordering::Release);
            io_fetched.fetch_add(1, Ordering::Relaxed);
            completer.complete(vcpu, token, Ok(())).expect("complete");
        }
    });

    let t0 = Instant::now();
    let mut vcpus = Vec::new();
    for id in 0..n_vcpus {
        let mut v = lb.vcpu(id).unwrap();
        let mem = mem.clone();
        vcpus.push(thread::spawn(move || {
            v.online().expect("guest: APF on");
            let (mut sync, mut asynch, mut halt) = (0u64, 0u64, 0u64);
            // The guest task walks its pages; a missing one is a stage-2 exit.
            let first = id as usize * pages_per_vcpu;
            for p in first..first + pages_per_vcpu {
                let gpa = REMOTE + p as u64 * PAGE;
                while !mem.present[p].load(Ordering::Acquire) {
                    match v.fault(gpa).expect("fault") {
                        Fault::Async => asynch += 1, // the task slept until "page ready"
                        Fault::Halt => halt += 1,
                        Fault::Sync => {
                            // The VMM fetches it itself, stalling the vCPU.
                            sync += 1;
                            thread::sleep(latency);
                            mem.present[p].store(true, Ordering::Release);
                        }
                    }
                }
                if v.pending() {
                    v.deliver().expect("deliver");
                }
            }
            v.deliver().expect("deliver");
            (v, asynch, sync, halt)
        }));
    }
    let vcpus: Vec<_> = vcpus.into_iter().map(|t| t.join().unwrap()).collect();
    let elapsed = t0.elapsed();

    println!("libapf {} Rust VMM example: {} vCPUs, {} pages each, {} us per fetch, transport {}",
        libapf::version(), n_vcpus, pages_per_vcpu, latency.as_micros(), name);
    println!("{:>4} {:>8} {:>6} {:>6} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6}",
        "vcpu", "async", "sync", "halt", "ready", "wakeall", "acks", "kicks", "g.slept", "g.ring");
    let mut ok = true;
    for (v, asynch, sync, halt) in &vcpus {
        let h = v.host_stats().unwrap();
        let g = v.guest_stats().unwrap();
        println!("{:>4} {:>8} {:>6} {:>6} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6}",
            v.id(), h.faults_async, h.faults_sync, h.faults_halt, h.ready_delivered,
            h.wake_all_delivered, h.acks, h.kicks, g.slept, g.ring_entries);
        ok &= h.faults_async == *asynch && h.faults_sync == *sync && h.faults_halt == *halt;
        ok &= h.ready_delivered == g.ready && h.wake_all_delivered == g.wake_all;
        ok &= h.faults_async == g.not_present && h.acks_spurious == 0 && g.bad_host_values == 0;
    }
    let total_async: u64 = vcpus.iter().map(|t| t.1).sum();
    println!("pages fetched by the I/O thread: {}; async faults: {}; wall time {:.1} ms",
        fetched.load(Ordering::Relaxed), total_async, elapsed.as_secs_f64() * 1e3);

    *queue.tx.lock().unwrap() = None; // stop the I/O thread
    drop(vcpus);
    io.join().unwrap();
    if !ok {
        eprintln!("vmm: host and guest statistics disagree");
        std::process::exit(1);
    }
    println!("vmm: OK (host and guest agree)");
}
