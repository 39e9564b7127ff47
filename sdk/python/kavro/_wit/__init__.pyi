# Type stubs only: what componentize-py generates as wit_world.imports (from
# wit/*.wit), re-exported by kavro as kavro.kv, kavro.config, ... and
# kavro.types. Nothing here exists at run time under this name; the build
# leaves this folder out of the component.
