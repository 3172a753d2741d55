"""Polytope structure of ReLU networks (Lee, Mammadov, Ye, ICML 2024, arXiv 2402.02407): construct
separators and covers (``construct``), extract the regions and polytopes of a trained 2-D network
(``extract``), compress a trained network to a minimal one (``compress``), toy datasets (``toys``)."""
from lrjax.polytope.construct import (cover, forward, from_vertices, inside, random_polytope, regular_polygon,
                                      separator)
from lrjax.polytope.extract import activation_patterns, components, decision_pieces, regions

__all__ = ["cover", "forward", "from_vertices", "inside", "random_polytope", "regular_polygon", "separator",
           "activation_patterns", "components", "decision_pieces", "regions"]
