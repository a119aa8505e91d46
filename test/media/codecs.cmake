# Codec unit tests: included from test/media/CMakeLists.txt.
sgw_test(codec_tests SOURCES codec_test.cc DEPS sgw_codecs)
