"""Face detector backends; each is one `FaceDetector` built from conf/faces/detector/."""
