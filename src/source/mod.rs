//! What feeds a viewer: sources of access units. Today a file played on
//! the viewer's own timeline.

pub mod playout;
