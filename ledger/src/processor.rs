//! The processors payledger has gateways for.

use std::fmt;

/// A payment processor. The set is closed: a command naming another is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Processor {
    Stripe,
    Square,
    Shuttle,
    BridgerPay,
    AsiaPay,
    PciProxy,
}

/// Processor names as they appear in commands, events and account names.
pub const PROCESSORS: [&str; 6] = [
    "stripe",
    "square",
    "shuttle",
    "bridgerpay",
    "asiapay",
    "pciproxy",
];

impl Processor {
    pub const ALL: [Processor; 6] = [
        Processor::Stripe,
        Processor::Square,
        Processor::Shuttle,
        Processor::BridgerPay,
        Processor::AsiaPay,
        Processor::PciProxy,
    ];

    pub fn parse(name: &str) -> Option<Processor> {
        PROCESSORS
            .iter()
            .position(|p| *p == name)
            .map(|i| Processor::ALL[i])
    }

    pub fn as_str(&self) -> &'static str {
        PROCESSORS[*self as usize]
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Processor::ALL {
            assert_eq!(Processor::parse(p.as_str()), Some(p));
        }
        assert_eq!(Processor::parse("paypal"), None);
        assert_eq!(Processor::parse("Stripe"), None);
    }
}
