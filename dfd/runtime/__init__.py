"""What every command needs around the science: the command line (`cli`), config composition
(`config`), user errors (`errors`), a run's name and tags from its command line (`run_info`),
the model hub (`hub`), cross-process locks (`interprocess`), progress bars (`progress`) and
DataLoader worker set-up (`workers`)."""
