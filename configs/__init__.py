"""mmx's Hydra configs. This folder ships inside the package as ``mmx.configs`` so that an
installed ``mmx`` finds them from any working directory."""
