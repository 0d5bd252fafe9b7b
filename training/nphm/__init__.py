"""Training NPHM on the artist's own heads (``avatar-foundry train nphm``)."""
