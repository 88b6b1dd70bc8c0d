//! What differs between the board and QEMU: the log transport, the cost counter, and how the
//! program ends. Also the panic and HardFault handlers, which log and end with a failure.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, DWT, SYST};
use cortex_m_rt::exception;

#[cfg(feature = "qemu")]
use defmt_semihosting as _;

#[cfg(all(feature = "board", not(feature = "qemu")))]
use defmt_rtt as _;

#[cfg(not(any(feature = "board", feature = "qemu")))]
compile_error!("enable feature `board` (default, RTT) or `qemu` (semihosting)");

/// Ends the program through semihosting, which QEMU turns into its exit code and
/// `probe-rs run` into its own. A board running without a debugger would fault on the
/// semihosting call, so there the program just sleeps.
pub fn exit(success: bool) -> ! {
    let code = if success {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    if cfg!(feature = "qemu") || cortex_m::peripheral::DCB::is_debugger_attached() {
        cortex_m_semihosting::debug::exit(code);
    }
    loop {
        cortex_m::asm::wfi();
    }
}

/// Logs where the panic happened and its message when it is a plain string; formatting
/// arbitrary messages would pull `core::fmt` (several KB of flash) into the image.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    let message = info.message().as_str().unwrap_or("(formatted message)");
    defmt::error!("PANIC at {=str}:{=u32}: {=str}", file, line, message);
    exit(false)
}

/// Start of the no-access guard below RAM (see [`guard_below_ram`]).
const GUARD_START: u32 = 0x1800_0000;
/// log2 of the guard's size: 128 MiB, up to the start of RAM at 0x2000_0000.
const GUARD_SIZE_LOG2: u32 = 27;

/// Turns the 128 MiB below RAM into a no-access MPU region, so that running off the end of
/// the stack faults at once.
///
/// flip-link puts the stack at the bottom of RAM, so an overflow leaves RAM. On the nRF52840
/// nothing is mapped below RAM (a BusFault) — but QEMU's mps2-an386 maps that range to an
/// "unimplemented device" that ignores writes and reads zeros, so without this region an
/// overflow there would run on silently. The region stops short of the nRF52840's FICR/UICR
/// (0x1000_0000..) and leaves the default memory map for everything else (PRIVDEFENA).
pub fn guard_below_ram(mpu: &mut cortex_m::peripheral::MPU) {
    const VALID: u32 = 1 << 4;
    const XN: u32 = 1 << 28;
    const ENABLE: u32 = 1;
    const PRIVDEFENA: u32 = 1 << 2;
    // SAFETY: region 0 is not otherwise used; the region covers no memory this program uses;
    // the barriers make the new map take effect before the next access.
    unsafe {
        mpu.rbar.write(GUARD_START | VALID);
        mpu.rasr.write(XN | ((GUARD_SIZE_LOG2 - 1) << 1) | ENABLE);
        mpu.ctrl.write(PRIVDEFENA | ENABLE);
    }
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

// The HardFault handler first moves the main stack pointer back to the top of the stack:
// after a stack overflow the old stack is unusable, and a handler that pushed onto it would
// fault again and lock the core up silently. The program ends in the handler, so what was on
// the stack no longer matters.
core::arch::global_asm!(
    ".section .HardFault.user, \"ax\"",
    ".global HardFault",
    ".type HardFault, %function",
    ".thumb_func",
    "HardFault:",
    "    ldr r0, =_stack_start",
    "    msr msp, r0",
    "    b {report}",
    "    .ltorg",
    report = sym hard_fault_report,
);

/// Logs the fault status registers and ends with a failure. Never returns.
extern "C" fn hard_fault_report() -> ! {
    // SAFETY: read-only accesses to the System Control Block's fault status registers.
    let (hfsr, cfsr, bfar, mmfar) = unsafe {
        let scb = &*cortex_m::peripheral::SCB::PTR;
        (
            scb.hfsr.read(),
            scb.cfsr.read(),
            scb.bfar.read(),
            scb.mmfar.read(),
        )
    };
    // CFSR: MSTKERR (bit 4) / BSTKERR (bit 12) = the exception frame could not be stacked;
    // MMARVALID (bit 7) with MMFAR in the guard = an access below RAM. Either is what running
    // off the end of the stack looks like here.
    let stacking = cfsr & (1 << 4 | 1 << 12) != 0;
    let in_guard = cfsr & (1 << 7) != 0 && (GUARD_START..0x2000_0000).contains(&mmfar);
    let overflow = stacking || in_guard;
    if overflow {
        defmt::error!("STACK OVERFLOW");
    }
    defmt::error!(
        "HARDFAULT hfsr={=u32:#x} cfsr={=u32:#x} bfar={=u32:#x} mmfar={=u32:#x} stack_overflow={=bool}",
        hfsr,
        cfsr,
        bfar,
        mmfar,
        overflow
    );
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) -> ! {
    defmt::error!("UNEXPECTED exception {=i16}", irqn);
    exit(false)
}

/// SysTick wraps (QEMU cost counter).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Counts what a computation costs: DWT cycles on a board; under QEMU, where DWT reads 0,
/// SysTick ticks on the core clock, which `-icount shift=0` makes count instructions.
pub struct Cost {
    _syst: SYST,
}

/// SysTick reload: the full 24 bits.
const RELOAD: u32 = 0x00FF_FFFF;

impl Cost {
    /// The unit [`Cost::now`] counts in, as logged.
    #[cfg(feature = "qemu")]
    pub const UNIT: &'static str = "instructions";
    /// The unit [`Cost::now`] counts in, as logged.
    #[cfg(not(feature = "qemu"))]
    pub const UNIT: &'static str = "cycles";

    /// Instructions per SysTick tick on mps2-an386 with `-icount shift=0` (1 ns per
    /// instruction, 25 MHz core clock); checked at start-up by [`Cost::calibrate`].
    #[cfg(feature = "qemu")]
    pub const INSTRUCTIONS_PER_TICK: u64 = 40;

    /// Starts the counter.
    pub fn start(mut syst: SYST, mut dcb: cortex_m::peripheral::DCB, mut dwt: DWT) -> Self {
        if cfg!(feature = "qemu") {
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(RELOAD);
            syst.clear_current();
            syst.enable_interrupt();
            syst.enable_counter();
        } else {
            dcb.enable_trace();
            DWT::unlock();
            dwt.enable_cycle_counter();
        }
        Cost { _syst: syst }
    }

    /// A running count in [`Cost::UNIT`]s, for [`Cost::since`].
    #[cfg(feature = "qemu")]
    pub fn now(&self) -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Relaxed);
            let cvr = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == before {
                let ticks = ((before as u64) << 24) + (RELOAD - cvr) as u64;
                return ticks * Self::INSTRUCTIONS_PER_TICK;
            }
        }
    }

    /// What was spent since `start` (a value of [`Cost::now`]).
    #[cfg(feature = "qemu")]
    pub fn since(&self, start: u64) -> u64 {
        self.now().saturating_sub(start)
    }

    /// A running count in [`Cost::UNIT`]s, for [`Cost::since`].
    #[cfg(not(feature = "qemu"))]
    pub fn now(&self) -> u64 {
        DWT::cycle_count() as u64
    }

    /// What was spent since `start` (a value of [`Cost::now`]): the 32-bit cycle counter
    /// wraps every 2³² cycles (67 s at 64 MHz), far longer than one prediction.
    #[cfg(not(feature = "qemu"))]
    pub fn since(&self, start: u64) -> u64 {
        DWT::cycle_count().wrapping_sub(start as u32) as u64
    }

    /// The count that a loop of a known number of instructions gives, as a check of
    /// [`Cost::INSTRUCTIONS_PER_TICK`]: returns (instructions executed, counted).
    pub fn calibrate(&self) -> (u64, u64) {
        const N: u32 = 1_000_000;
        let t0 = self.now();
        // `subs` + `bne` per iteration, N + 1 iterations.
        cortex_m::asm::delay(N);
        (2 * (N as u64 + 1), self.since(t0))
    }
}
