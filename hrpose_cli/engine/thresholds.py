"""The person detector's score thresholds, kept free of torch so that option help can name them.

Both were chosen on coco-real *train* (``python benchmarks/detector_thresholds.py``), so that figures on
coco-real val stay unbiased: drawings want no phantom people, evaluation wants every plausible box (as
COCO's protocol and ultralytics' 0.25 to predict, 0.001 to validate).
"""

PREDICT_THRESHOLD = 0.35  # the best F1 of detected vs. labelled people (IoU 0.5) on coco-real train
EVAL_THRESHOLD = 0.05  # the best keypoint AP with detected boxes on coco-real train
