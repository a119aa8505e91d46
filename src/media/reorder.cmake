# RTP reorder buffer (included from src/media/CMakeLists.txt).
sgw_layer(reorder SOURCES reorder_buffer.cc DEPS sgw_common)
