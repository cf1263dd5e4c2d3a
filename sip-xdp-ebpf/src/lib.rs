//! Packet parsing shared by sip-xdp's programs (`main.rs`) and the test
//! programs of the benchmark (`tests/ebpf`): bounds-checked access and one
//! parser per header. No maps live here, so a program that uses the
//! parsers carries none of the filter's state.
#![no_std]

pub mod eth;
pub mod ip;
pub mod l4;
pub mod packet;
