// A map kernel: y = x * factor, for the cosmobac batch ABI.
export function alloc(size: i32): usize {
  return heap.alloc(<usize>size);
}

export function scale(n: i32, x: usize, y: usize, factor: f64): i32 {
  for (let i = 0; i < n; i++) {
    const at = <usize>i << 3;
    store<f64>(y + at, load<f64>(x + at) * factor);
  }
  return 0;
}
