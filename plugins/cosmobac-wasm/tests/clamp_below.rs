// src/lib.rs
use std::alloc::{alloc as allocate, Layout};

#[no_mangle]
pub extern "C" fn alloc(size: i32) -> *mut u8 {
    match Layout::from_size_align(size.max(1) as usize, 16) {
        Ok(layout) => unsafe { allocate(layout) }, // null when out of memory
        Err(_) => std::ptr::null_mut(),
    }
}

/// y = max(x, floor): a map kernel with one input, one output and one parameter.
#[no_mangle]
pub extern "C" fn clamp_below(n: i32, x: *const f64, y: *mut f64, floor: f64) -> i32 {
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(x, n as usize),
            std::slice::from_raw_parts_mut(y, n as usize),
        )
    };
    for (out, value) in y.iter_mut().zip(x) {
        *out = if value.is_nan() { f64::NAN } else { value.max(floor) };
    }
    0
}
