//! Adapters: the only code that reads or changes the machine.

pub mod facts;
