sgw_test(key_template_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/key_template_test.cc DEPS sgw_key_template)
