"""Analysis: spectra, principal angles, rank measures, trajectory PCA, cheap top-k tracking,
compression from the initial gradient, and the invariant-subspace theorem check."""
from lrjax.analysis.compression import (compress, compress_bound, compress_factors, compressed_param,
                                        energy_outside, invariant_input_subspace)
from lrjax.analysis.spectra import (effective_rank, factor_spectra, numerical_rank, orthogonal_complement,
                                    orthonormal_basis, path_distance, principal_angles, sin_largest_angle, singular_values,
                                    stable_rank, subspace_alignment, trajectory_pca, UpdateSpectra)
from lrjax.analysis.theorem import (TheoremCheck, check_invariant_subspace, prop2_bound, rho_trajectory,
                                    structure_residual, theorem_bases)
from lrjax.analysis.tracking import SVDTracker, TopKTracker, deep_factors, orthonormalize

__all__ = [
    "compress", "compress_bound", "compress_factors", "compressed_param", "energy_outside", "invariant_input_subspace",
    "effective_rank", "factor_spectra", "numerical_rank", "orthogonal_complement", "orthonormal_basis", "path_distance",
    "principal_angles", "sin_largest_angle", "singular_values", "stable_rank", "subspace_alignment",
    "trajectory_pca", "UpdateSpectra", "TheoremCheck", "check_invariant_subspace", "prop2_bound", "rho_trajectory",
    "structure_residual", "theorem_bases", "SVDTracker", "TopKTracker", "deep_factors", "orthonormalize",
]
