//! sfu-stub
