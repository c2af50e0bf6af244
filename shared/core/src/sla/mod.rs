//! Service levels: how long a waiting customer may wait, on whose clock, and when to warn.
//!
//! * [`calendar`]: business calendars (time zone, weekly hours with split shifts, holidays, or
//!   a clock that always runs) and the due-time arithmetic over them;
//! * [`policy`]: the policy file (`config/sla.toml`): targets per channel and priority for the
//!   first and the next response, the warning point, each team's calendar, and the messaging
//!   window of WhatsApp, Messenger and Instagram.
//!
//! Plain functions over plain data: no I/O, no AWS types.

pub mod calendar;
pub mod policy;
pub mod reminder;

pub use calendar::{Calendar, Range, TimeOfDay};
pub use policy::{Due, PolicyError, SlaClock, SlaPolicy, Wait, WindowClosing};
pub use reminder::{Reminder, ReminderKind, WatchedAccount, watch_id};

#[cfg(test)]
mod tests;
