"""Looking inside a trained agent: playing it, saliency maps, relevance trees and their viewer,
attention videos.
"""
