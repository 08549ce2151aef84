//! Tools for the people who write mapping files: the tests written inside them
//! ([`test`], `userbridge test`), which rules they exercise ([`coverage`]), and a new dialect's skeleton from the vendor's OpenAPI
//! document ([`scaffold`], `userbridge scaffold`).

pub mod coverage;
pub mod scaffold;
pub mod test;
pub mod vendor_doc;
