"""syncd: shared agendas for 1:1 meetings, written into the calendar invite."""
