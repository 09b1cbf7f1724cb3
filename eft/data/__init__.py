"""eft.data: what the fitting reads - exemplars (:mod:`~eft.data.exemplar`), images and
person crops (:mod:`~eft.data.images`) and the dataset readers (:mod:`~eft.data.readers`).

Synthetic people and the pose bank live in :mod:`eft.synthetic`.
"""
