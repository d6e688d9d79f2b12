"""What the recognition contract's endpoints (/v1/*) do, between the routers and Triton.

* codec.py: base64 as clients send it, and the feature codec;
* scoring.py: unit vectors and cosine similarity;
* faces.py: the contract's face shapes, their order and the aligned crop's template;
* images.py: images as uploads or base64, checked and decoded;
* models.py: model configs described for /v1/info/model/{name};
* service.py: ``Recognition``, the Triton calls of one worker, with the pipelines the
  catalog (frontend/inference/served.py) selected;
* info.py: /v1/health and /v1/info/*.

The first five are pure and unit-tested without Triton.
"""
