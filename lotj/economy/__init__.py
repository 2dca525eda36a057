"""The model's economics as pure tensor functions (no training code, no Lightning)."""
