"""The Spark back-end: ItemCF and Swing neighbour tables fitted with PySpark's DataFrame API.

``funnelrec train --engine spark`` fits the ItemCF (and Swing) channels here and everything
else as usual. The Spark jobs compute exactly the weights of the single-machine numba kernels
(:mod:`funnelrec.recall.itemcf`, :mod:`funnelrec.recall.swing`) and hand back the same fitted
state (``neighbor_idx`` / ``neighbor_sim`` ``[n_items, K]``), so the artifacts ``serve``
loads cannot tell which engine wrote them.

PySpark is imported only inside the functions that start or use a session, so importing this
package (or :mod:`funnelrec.config`, or serving) never loads it. Spark needs a Java runtime
(17 or later) on ``PATH`` or in ``JAVA_HOME``: :func:`~funnelrec.spark.session.java_available`.
"""

from funnelrec.spark.options import SparkOptions

__all__ = ["SparkOptions"]
