# SRTP (sgw_srtp): included from src/media/CMakeLists.txt. libsrtp2 (BSD-3-Clause).
pkg_check_modules(SRTP2 REQUIRED IMPORTED_TARGET GLOBAL libsrtp2)
sgw_layer(srtp SOURCES srtp_session.cc DEPS sgw_common PkgConfig::SRTP2)
target_link_libraries(sgw_media PUBLIC sgw_srtp)
