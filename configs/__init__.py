"""mmx's Hydra configs. This folder ships inside the package as ``mmx.configs`` so that an
installed ``mmx`` finds them from any working directory. Importing it registers the groups'
schemas (``mmx.schema``), which the YAML files name, wherever the configs are composed from."""

from mmx.schema import register_schemas

register_schemas()
