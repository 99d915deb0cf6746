"""What the user says: scenarios, options and units, checked against the world's facts; errors that name the fix."""
