"""Face detector backends; each is one `FaceDetector` built from conf/preprocess/detector/."""
