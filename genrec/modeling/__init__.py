"""The model: frozen backbone + frozen CLIP features → visual projector → adapters (VIP5, Geng et al. 2023)."""
