//! Tools for the people who write mapping files: the tests written inside them
//! ([`test`], `userbridge test`).

pub mod test;
