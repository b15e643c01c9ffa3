# Helpers shared by every CMakeLists.txt: one line adds a service or a test.

# evpipe_add_service(<name> SOURCES <files...> [LIBS <libs...>])
# Builds <name>_core (a static library with the service logic, linkable by tests)
# and the executable evpipe-<name> from main.c.
function(evpipe_add_service name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name}_core STATIC ${A_SOURCES})
  target_include_directories(${name}_core PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name}_core PUBLIC evpipe_common evpipe_proto ${A_LIBS})
  add_executable(evpipe-${name} main.c)
  target_link_libraries(evpipe-${name} PRIVATE ${name}_core)
endfunction()

# evpipe_add_test(<name> SOURCES <files...> [LIBS <libs...>] [TIMEOUT s] [LABELS l...])
# A Criterion test executable registered with CTest.
function(evpipe_add_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 60)
  endif()
  add_executable(test_${name} ${A_SOURCES})
  target_link_libraries(test_${name} PRIVATE PkgConfig::CRITERION evpipe_testkit ${A_LIBS})
  set_target_properties(test_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND test_${name} --jobs 1)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}"
    ENVIRONMENT "EVPIPE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;EVPIPE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
