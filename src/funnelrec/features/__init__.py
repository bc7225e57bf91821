"""Feature encoders shared by recall and ranking."""
