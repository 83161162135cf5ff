"""Pictures: training curves, piano rolls."""
