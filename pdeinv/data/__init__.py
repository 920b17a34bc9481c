"""Data: the dataset schema and I/O (netCDF/zarr), torch datasets, generation (serial/Dask), mesh coupling.

* :mod:`pdeinv.data.io` -- ``save_dataset``, ``load_dataset``, ``dataset_tensors``, ``grid_of``, ``result_to_xarray``
* :mod:`pdeinv.data.datasets` -- ``FieldDataset``, ``UnitGaussianNormalizer``, ``train_test_split``
* :mod:`pdeinv.data.generate` -- ``generate``, ``load_recipe``, ``cached_dataset`` and the ``pdeinv generate`` CLI
* :mod:`pdeinv.data.mesh` -- meshio export/import: ``export_field``, ``read_observations``, ``mesh_to_grid``, ``grid_to_points``
"""
from pdeinv.data.io import (SCHEMA, build_dataset, dataset_tensors, grid_of, load_dataset, result_to_xarray, save_dataset,
                 state_grid_of, validate_dataset)
from pdeinv.data.datasets import FieldDataset, UnitGaussianNormalizer, train_test_split
from pdeinv.data.generate import cached_dataset, load_recipe, sample_seed  # the function: pdeinv.data.generate.generate
from pdeinv.data.mesh import export_field, grid_to_points, mesh_to_grid, read_mesh_field, read_observations, write_on_mesh

__all__ = ["SCHEMA", "build_dataset", "dataset_tensors", "grid_of", "load_dataset", "result_to_xarray",
           "save_dataset", "state_grid_of", "validate_dataset", "FieldDataset", "UnitGaussianNormalizer",
           "train_test_split", "cached_dataset", "load_recipe", "sample_seed", "export_field",
           "grid_to_points", "mesh_to_grid", "read_mesh_field", "read_observations", "write_on_mesh"]
