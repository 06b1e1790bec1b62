// libtorch's default random generator is process-wide: tests that seed it and expect exact values must not run
// beside other tests drawing from it, so every test project runs its tests one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
