"""Deep relevance trees from attention peaks down to input pixels: growing them (tree), their JSON
(tree_json), the offline HTML viewer and static drawings.
"""
