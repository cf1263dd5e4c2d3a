//! Byte access for the scans that run inside the kernel: indexes the BPF
//! verifier can follow.

/// Bytes of a message copied for the scans that look past its first line
/// (the CSeq of a response, the User-Agent of a request).
pub const RESPONSE_SCAN: usize = 512;

/// `buf[i]`, or 0 past the end. The index is masked on an opaque copy so
/// that the BPF verifier sees the bound on the very register that forms the
/// address (LLVM would otherwise drop the mask as implied by the check, and
/// check a different register than the one it loads through).
#[inline(always)]
pub fn at(buf: &[u8; RESPONSE_SCAN], i: usize) -> u8 {
    const _: () = assert!(RESPONSE_SCAN.is_power_of_two());
    if i >= RESPONSE_SCAN {
        return 0;
    }
    buf[core::hint::black_box(i) & (RESPONSE_SCAN - 1)]
}
