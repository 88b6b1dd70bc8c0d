//! Memory use, from the linker's symbols and the painted stack. Taking the address of an
//! extern static is safe; only [`stack_peak`] reads memory.

use core::ptr::addr_of;

extern "C" {
    static __vector_table: u32;
    static __sdata: u32;
    static __edata: u32;
    static __sidata: u32;
    static __suninit: u32;
    static __euninit: u32;
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The value cortex-m-rt's `paint-stack` writes over the whole stack at reset.
const PAINT: u32 = 0xCCCC_CCCC;

fn addr(sym: *const u32) -> usize {
    sym as usize
}

/// Flash used: from the vector table to the end of `.data`'s initial values
/// (`.text`, `.rodata` with the model and the images, then `.data`'s load image).
pub fn flash_used() -> usize {
    addr(addr_of!(__sidata)) + (addr(addr_of!(__edata)) - addr(addr_of!(__sdata)))
        - addr(addr_of!(__vector_table))
}

/// Static RAM: `.data` + `.bss` + `.uninit`. With flip-link they sit above the stack.
pub fn static_ram() -> usize {
    addr(addr_of!(__euninit)) - addr(addr_of!(__sdata))
}

/// Bytes reserved for the stack (everything in RAM that is not static).
pub fn stack_size() -> usize {
    addr(addr_of!(_stack_start)) - addr(addr_of!(_stack_end))
}

/// Deepest stack use so far: scans up from the stack's far end for the first word that is
/// no longer the paint.
pub fn stack_peak() -> usize {
    // SAFETY: the addresses come from the linker; `_stack_end.._stack_start` is RAM that this
    // program owns, and the words below the current stack pointer are not in use, so reading
    // them races with nothing.
    unsafe {
        let start = addr(addr_of!(_stack_start));
        let mut p = addr(addr_of!(_stack_end)) as *const u32;
        while (p as usize) < start && core::ptr::read_volatile(p) == PAINT {
            p = p.add(1);
        }
        start - p as usize
    }
}
