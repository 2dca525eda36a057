"""The economy in motion: the simulator, the distributions χ, χ^N, χ^E, Π, ω, the Ω augmentation."""
