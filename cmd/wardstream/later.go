package main

// These commands are built by the work on their issues; until then they say so.
