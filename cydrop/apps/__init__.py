"""cydrop's applications: the ``cydrop`` command and what it runs.

``demo``, ``search`` and ``bench`` with the CLI that dispatches them
(``cli``). They are users of the library, never used by it: nothing under
``cydrop/`` outside this folder imports from here, so ``import cydrop`` stays
small.
"""
