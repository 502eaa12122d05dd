"""Mirror sources: a pull-through cache of an upstream simple index (`pypi` and `curated-pypi` types)."""
