// SPDX-License-Identifier: MIT
//! The engine and both frontends driven directly, as a VMM does (guest memory and the
//! injections are this test's embedder), the error mapping against the C library, and the
//! no-unwind rule of the callbacks.
use std::sync::{Arc, Mutex};
use std::thread;

use libapf::sys;
use libapf::{
    Embedder, Error, Fault, Host, HostConfig, KvmArm64, KvmArm64Config, KvmArm64State, KvmX86, KvmX86Config,
    KvmX86State, MsrWrite, SmcccResult, Transport,
};

const BASE: u64 = 0x10000;
const SIZE: usize = 0x10000;
const AREA: u64 = BASE + 0x40;
const GS: u32 = libapf::GS_USER | libapf::GS_IRQ_ON | libapf::GS_PAGING | libapf::GS_IRQCHIP_ON;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    NotPresent(u32, u32),
    Ready(u32, u32),
    Submit(u32, u32, u64),
}

/// Guest RAM [BASE, BASE + SIZE) and a log of what the engine asked for.
struct Vm {
    mem: Mutex<Vec<u8>>,
    log: Mutex<Vec<Ev>>,
    panic_in_ready: bool,
}

impl Vm {
    fn new() -> Arc<Vm> {
        Arc::new(Vm { mem: Mutex::new(vec![0; SIZE]), log: Mutex::new(Vec::new()), panic_in_ready: false })
    }
    fn range(gpa: u64, len: usize) -> Result<std::ops::Range<usize>, Error> {
        if gpa < BASE || gpa - BASE + len as u64 > SIZE as u64 {
            return Err(Error::Fault);
        }
        let at = (gpa - BASE) as usize;
        Ok(at..at + len)
    }
    fn word(&self, gpa: u64) -> u32 {
        let m = self.mem.lock().unwrap();
        let r = Vm::range(gpa, 4).unwrap();
        u32::from_le_bytes([m[r.start], m[r.start + 1], m[r.start + 2], m[r.start + 3]])
    }
    fn set_word(&self, gpa: u64, v: u32) {
        let r = Vm::range(gpa, 4).unwrap();
        self.mem.lock().unwrap()[r].copy_from_slice(&v.to_le_bytes());
    }
    fn take_log(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Embedder for Vm {
    fn submit(&self, vcpu: u32, token: u32, gpa: u64) {
        self.log.lock().unwrap().push(Ev::Submit(vcpu, token, gpa));
    }
    fn inject_not_present(&self, vcpu: u32, token: u32) {
        self.log.lock().unwrap().push(Ev::NotPresent(vcpu, token));
    }
    fn inject_ready(&self, vcpu: u32, vector: u32) {
        if self.panic_in_ready {
            panic!("embedder bug");
        }
        self.log.lock().unwrap().push(Ev::Ready(vcpu, vector));
    }
    fn kick(&self, _vcpu: u32) {}
    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> libapf::Result<()> {
        let r = Vm::range(gpa, buf.len())?;
        buf.copy_from_slice(&self.mem.lock().unwrap()[r]);
        Ok(())
    }
    fn write_guest(&self, gpa: u64, buf: &[u8]) -> libapf::Result<()> {
        let r = Vm::range(gpa, buf.len())?;
        self.mem.lock().unwrap()[r].copy_from_slice(buf);
        Ok(())
    }
}

#[test]
fn library_matches_the_bindings() {
    // SAFETY: a pure function.
    assert_eq!(unsafe { sys::apf_version() }, sys::APF_VERSION_HEX);
    assert_eq!(libapf::version(), format!("{}.{}.{}", sys::APF_VERSION_MAJOR, sys::APF_VERSION_MINOR, sys::APF_VERSION_PATCH));
}

#[test]
fn errors_map_one_to_one() {
    assert_eq!(Error::ALL.len(), 23);
    for code in -300..=0 {
        // SAFETY: apf_err_name() accepts any value and returns a static string.
        let c_name = unsafe { std::ffi::CStr::from_ptr(sys::apf_err_name(code)) }.to_str().unwrap();
        match Error::from_code(code) {
            Some(e) => {
                assert_eq!(e.name(), c_name);
                assert_eq!(e.code(), code);
                assert_eq!(Error::from_raw(code), e);
            }
            None => {
                assert!(c_name == "UNKNOWN" || c_name == "OK", "{} = {} not mapped", code, c_name);
                if code < 0 {
                    assert_eq!(Error::from_raw(code), Error::Unknown(code));
                }
            }
        }
    }
    for e in Error::ALL {
        assert_eq!(Error::from_code(e.code()), Some(*e));
    }
    assert_eq!(Error::Inval.code(), -22);
    assert_eq!(Error::Inval.to_string(), "invalid argument (EINVAL)");
}

#[test]
fn kvm_x86_frontend() {
    let vm = Vm::new();
    let host = Host::new(&HostConfig::new(1, Transport::KvmX86), vm.clone()).unwrap();
    assert_eq!(host.vcpu_count(), 1);
    assert!(host.memory() > 0);
    let fe = KvmX86::new(&host, &KvmX86Config::default()).unwrap();
    assert_eq!(KvmArm64::new(&host, &KvmArm64Config::default()).err(), Some(Error::Inval));
    assert_eq!(
        fe.cpuid(sys::APF_KVM_CPUID_SIGNATURE),
        Some([0x4000_0001, sys::APF_KVM_SIGNATURE_EBX, sys::APF_KVM_SIGNATURE_ECX, sys::APF_KVM_SIGNATURE_EDX])
    );
    assert_eq!(fe.cpuid(sys::APF_KVM_CPUID_FEATURES), Some([(1 << 4) | (1 << 14), 0, 0, 0]));
    assert_eq!(fe.cpuid(0), None);

    let mut v = host.vcpu(0).unwrap();
    assert_eq!(host.vcpu(0).err(), Some(Error::Busy));
    assert_eq!(fe.wrmsr(&mut v, 0x10, 1), Ok(MsrWrite::NotMine));
    assert_eq!(fe.rdmsr(&mut v, 0x10), Ok(None));
    // Rejected guest writes (#GP), each changing nothing.
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_INT, 0x10), Err(Error::Inval)); // vector < 32
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN, AREA | 0x9), Err(Error::Inval)); // no vector yet
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_INT, 0xec), Ok(MsrWrite::Handled));
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN, AREA | 0x39), Err(Error::Inval)); // bits 5:4
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN, 0x4000_0000 | 0x9), Err(Error::Fault));
    assert_eq!(v.enabled(), Ok(false));
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN, AREA | 0x9), Ok(MsrWrite::Handled));
    assert_eq!(v.enabled(), Ok(true));
    assert_eq!(fe.rdmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN), Ok(Some(AREA | 0x9)));

    // The wake-all, then the guest's ACK.
    assert_eq!(v.before_entry(GS), Ok(1));
    assert_eq!(vm.take_log(), vec![Ev::Ready(0, 0xec)]);
    assert_eq!(vm.word(AREA + 4), u32::MAX);
    vm.set_word(AREA + 4, 0);
    assert_eq!(fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_ACK, 1), Ok(MsrWrite::Handled));

    // A fault: "not present" in the area (reason 1), the work submitted, completed from
    // another thread, delivered as "page ready" with the same token.
    assert_eq!(v.fault(0x1_0000_0000, GS), Ok(Fault::Async));
    let log = vm.take_log();
    let token = match log.as_slice() {
        [Ev::NotPresent(0, t), Ev::Submit(0, t2, 0x1_0000_0000)] if t == t2 => *t,
        other => panic!("unexpected {:?}", other),
    };
    assert_eq!(vm.word(AREA), sys::APF_REASON_NOT_PRESENT);
    vm.set_word(AREA, 0);
    let c = host.completer();
    thread::spawn(move || c.complete(0, token, Ok(()))).join().unwrap().unwrap();
    assert_eq!(host.completer().complete(0, token, Ok(())), Err(Error::Already));
    assert_eq!(v.before_entry(GS), Ok(1));
    assert_eq!(vm.take_log(), vec![Ev::Ready(0, 0xec)]);
    assert_eq!(vm.word(AREA + 4), token);
    let s = v.stats().unwrap();
    assert_eq!((s.faults_async, s.ready_delivered, s.wake_all_delivered, s.acks), (1, 1, 1, 1));

    // Migration: the MSRs as plain bytes, restored on a destination engine.
    let st = fe.save(&mut v).unwrap();
    assert_eq!(st, KvmX86State { msr_int: 0xec, msr_en: AREA | 0x9 });
    assert_eq!(KvmX86State::from_bytes(&st.to_bytes()), Ok(st));
    let dst = Host::new(&HostConfig::new(1, Transport::KvmX86), vm.clone()).unwrap();
    let fe2 = KvmX86::new(&dst, &KvmX86Config::default()).unwrap();
    let mut v2 = dst.vcpu(0).unwrap();
    assert_eq!(fe.wrmsr(&mut v2, sys::APF_KVM_MSR_ASYNC_PF_INT, 0xec), Err(Error::Inval)); // other engine
    let bad = KvmX86State { msr_en: AREA | 0x31, ..st };
    assert_eq!(fe2.restore(&mut v2, &bad), Err(Error::Inval));
    assert_eq!(v2.enabled(), Ok(false));
    fe2.restore(&mut v2, &st).unwrap();
    assert_eq!(v2.enabled(), Ok(true));
    assert_eq!(v2.before_entry(GS), Ok(0)); // slot still holds the token: no wake-all yet
    vm.set_word(AREA + 4, 0);
    assert_eq!(v2.before_entry(GS), Ok(1));
    assert_eq!(vm.word(AREA + 4), u32::MAX);
    fe2.vcpu_reset(&mut v2).unwrap();
    assert_eq!(fe2.rdmsr(&mut v2, sys::APF_KVM_MSR_ASYNC_PF_EN), Ok(Some(0)));
}

#[test]
fn kvm_arm64_frontend() {
    let vm = Vm::new();
    let host = Host::new(&HostConfig::new(2, Transport::KvmArm64), vm.clone()).unwrap();
    assert_eq!(KvmX86::new(&host, &KvmX86Config::default()).err(), Some(Error::Inval));
    let fe = KvmArm64::new(&host, &KvmArm64Config::default()).unwrap();
    assert_eq!(KvmArm64::features(), 1u64 << sys::APF_ARM64_FEATURE_BIT);
    let mut v = host.vcpu(1).unwrap();
    let call = |sub: u32, x2: u64, x3: u64| [sys::APF_ARM64_FUNC_ID as u64, sub as u64, x2, x3];
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_VERSION, 0, 0)), Ok(SmcccResult::Handled([0x010100, 0, 0, 0])));
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_FEATURES, 0, 0)), Ok(SmcccResult::Handled([1, 0, 0, 0])));
    assert_eq!(fe.hvc(&mut v, [0x8600_0001, 0, 0, 0]), Ok(SmcccResult::NotMine));
    assert_eq!(fe.set_irq(&mut v, 5), Err(Error::Inval));
    fe.set_irq(&mut v, 20).unwrap();
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_IRQ, 0, 0)), Ok(SmcccResult::Handled([20, 0, 0, 0])));
    // ENABLE: control = area | ENABLED in x2 (low) / x3 (high).
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_ENABLE, AREA | 1, 0)), Ok(SmcccResult::Handled([0, 0, 0, 0])));
    assert_eq!(v.enabled(), Ok(true));
    // A bad flag is answered with an SMCCC error, and changes nothing.
    let r = fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_ENABLE, AREA | 0x8 | 1, 0)).unwrap();
    assert_eq!(r, SmcccResult::Handled([sys::APF_SMCCC_INVALID_PARAMETER as i64 as u64, 0, 0, 0]));
    assert_eq!(v.before_entry(GS), Ok(1));
    assert_eq!(vm.take_log(), vec![Ev::Ready(1, 20)]);

    let st = fe.save(&mut v).unwrap();
    assert_eq!((st.version, st.irq, st.control, st.ring), (0x010100, 20, AREA | 1, 0));
    assert_eq!(KvmArm64State::from_bytes(&st.to_bytes()), Ok(st));
    let mut bytes = st.to_bytes();
    bytes[12] = 1;
    assert_eq!(KvmArm64State::from_bytes(&bytes), Err(Error::Inval));
    let dst = Host::new(&HostConfig::new(2, Transport::KvmArm64), vm.clone()).unwrap();
    let fe2 = KvmArm64::new(&dst, &KvmArm64Config { no_ring: true, ..Default::default() }).unwrap();
    let mut v2 = dst.vcpu(1).unwrap();
    assert_eq!(fe2.hvc(&mut v2, call(sys::APF_ARM64_FUNC_FEATURES, 0, 0)), Ok(SmcccResult::Handled([0, 0, 0, 0])));
    assert_eq!(fe2.restore(&mut v2, &KvmArm64State { irq: 3, ..st }), Err(Error::Inval));
    assert_eq!(v2.enabled(), Ok(false));
    fe2.restore(&mut v2, &st).unwrap();
    assert_eq!(v2.enabled(), Ok(true));
    assert_eq!(fe2.save(&mut v2).unwrap().control, AREA | 1);
}

/// A panic in a callback must abort the process, never unwind into C: run the child test
/// below in a process of its own and expect SIGABRT.
#[test]
fn callback_panic_aborts() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "panic_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("LIBAPF_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "status {:?}, stderr: {}", out.status, err);
    assert!(err.contains("libapf: a Rust callback (inject_ready) panicked: aborting"), "{}", err);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CHILD: returned"));
}

#[test]
#[ignore = "run by callback_panic_aborts in a child process"]
fn panic_child() {
    if std::env::var_os("LIBAPF_PANIC_CHILD").is_none() {
        return;
    }
    let vm = Arc::new(Vm { mem: Mutex::new(vec![0; SIZE]), log: Mutex::new(Vec::new()), panic_in_ready: true });
    let host = Host::new(&HostConfig::new(1, Transport::KvmX86), vm).unwrap();
    let fe = KvmX86::new(&host, &KvmX86Config::default()).unwrap();
    let mut v = host.vcpu(0).unwrap();
    fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_INT, 0xec).unwrap();
    fe.wrmsr(&mut v, sys::APF_KVM_MSR_ASYNC_PF_EN, AREA | 0x9).unwrap();
    let _ = v.before_entry(GS); // inject_ready panics here
    println!("CHILD: returned");
}

/// The arm64 frontend in ring mode (protocol 1.1), as a VMM sees it: the guest registers a
/// ring page (RING), enables with the RING flag, and "page ready" arrives as ring entries
/// with one notification, no IRQ_ACK; the migration state carries the registration.
#[test]
fn kvm_arm64_ready_ring() {
    const RING: u64 = BASE + 0x1000; // page-aligned guest memory
    let vm = Vm::new();
    let host = Host::new(&HostConfig::new(1, Transport::KvmArm64), vm.clone()).unwrap();
    let fe = KvmArm64::new(&host, &KvmArm64Config::default()).unwrap();
    let mut v = host.vcpu(0).unwrap();
    let call = |sub: u32, x2: u64, x3: u64| [sys::APF_ARM64_FUNC_ID as u64, sub as u64, x2, x3];
    let ok = SmcccResult::Handled([0, 0, 0, 0]);
    let invalid = SmcccResult::Handled([sys::APF_SMCCC_INVALID_PARAMETER as i64 as u64, 0, 0, 0]);
    fe.set_irq(&mut v, 20).unwrap();
    // Refused registrations: not page-aligned, size 2^10 > 512, outside guest memory.
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_RING, (RING + 0x40) | 3, 0)), Ok(invalid));
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_RING, RING | 10, 0)), Ok(invalid));
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_RING, 0x4000_0000 | 3, 0)), Ok(invalid));
    // The guest's consumer line before registration (cons = 0, event = 1), then 8 entries.
    vm.set_word(RING + sys::APF_RING_EVENT_OFFSET as u64, 1);
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_RING, RING | 3, 0)), Ok(ok));
    let flags = (sys::APF_EN_ENABLED | sys::APF_ARM64_EN_RING) as u64;
    assert_eq!(fe.hvc(&mut v, call(sys::APF_ARM64_FUNC_ENABLE, AREA | flags, 0)), Ok(ok));
    assert_eq!(v.enabled(), Ok(true));
    // The wake-all goes into the ring: entry 0, prod 1, one interrupt.
    assert_eq!(v.before_entry(GS), Ok(1));
    assert_eq!(vm.take_log(), vec![Ev::Ready(0, 20)]);
    assert_eq!(vm.word(RING + sys::APF_RING_SIZE_OFFSET as u64), 8);
    assert_eq!(vm.word(RING + sys::APF_RING_PROD_OFFSET as u64), 1);
    assert_eq!(vm.word(RING + sys::APF_RING_ENTRIES_OFFSET as u64), u32::MAX);
    // Two faults completed: both entries posted at the next entry without any ACK exit;
    // the guest has not moved `event`, so no second interrupt (notification hold-off).
    let c = host.completer();
    let mut tokens = Vec::new();
    for gpa in [0x1_0000_0000u64, 0x1_0000_1000] {
        assert_eq!(v.fault(gpa, GS), Ok(Fault::Async));
        tokens.push(match vm.take_log().as_slice() {
            [Ev::NotPresent(0, t), Ev::Submit(0, t2, g)] if t == t2 && *g == gpa => *t,
            other => panic!("unexpected {:?}", other),
        });
        // arm64: reason and token of "not present" travel in the area; the guest's
        // handler takes them (until then a next fault cannot go async: Halt).
        assert_eq!((vm.word(AREA), vm.word(AREA + 4)), (sys::APF_REASON_NOT_PRESENT, *tokens.last().unwrap()));
        vm.set_word(AREA, 0);
        vm.set_word(AREA + 4, 0);
    }
    for t in &tokens {
        c.complete(0, *t, Ok(())).unwrap();
    }
    assert_eq!(v.before_entry(GS), Ok(2));
    assert_eq!(vm.take_log(), vec![]);
    assert_eq!(vm.word(RING + sys::APF_RING_PROD_OFFSET as u64), 3);
    assert_eq!(vm.word(RING + sys::APF_RING_ENTRIES_OFFSET as u64 + 4), tokens[0]);
    assert_eq!(vm.word(RING + sys::APF_RING_ENTRIES_OFFSET as u64 + 8), tokens[1]);
    // A consumer index past prod is refused and counted when the host next needs room;
    // the entry still goes out (the host's own copy of the index is the truth).
    vm.set_word(RING + sys::APF_RING_CONS_OFFSET as u64, 7);
    assert_eq!(v.fault(0x1_0000_2000, GS), Ok(Fault::Async));
    let t3 = match vm.take_log().as_slice() {
        [Ev::NotPresent(0, t), Ev::Submit(0, _, _)] => *t,
        other => panic!("unexpected {:?}", other),
    };
    c.complete(0, t3, Ok(())).unwrap();
    assert_eq!(v.before_entry(GS), Ok(1));
    assert_eq!(vm.word(RING + sys::APF_RING_PROD_OFFSET as u64), 4);
    assert_eq!(vm.word(RING + sys::APF_RING_ENTRIES_OFFSET as u64 + 12), t3);
    let s = v.stats().unwrap();
    assert_eq!(s.bad_guest_values, 1);
    assert_eq!((s.ready_delivered, s.wake_all_delivered, s.acks, s.notifications), (3, 1, 0, 1));
    assert_eq!(vm.take_log(), vec![]);
    // The migration state names the ring.
    let st = fe.save(&mut v).unwrap();
    assert_eq!((st.control, st.ring), (AREA | flags, RING | 3));
}
