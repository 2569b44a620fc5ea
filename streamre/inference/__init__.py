"""From segments to triplets: the seams (`seam`, torch-free), the product's speech path
(`speech_path`, `pipeline`, the text extractor) and the batching engine around it (`engine`,
`batching`). The aligned speech model lives in `streamre.model`, loaded only when asked for."""
