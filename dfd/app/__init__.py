"""`python -m dfd.app`: a web page where a person drops a photo or a video and sees each face
boxed with its p(fake), a video's score and its per-frame curve (`dfd.app.page`), scored with
`dfd.predict`'s face pipeline and scorer (`dfd.app.scoring`)."""
