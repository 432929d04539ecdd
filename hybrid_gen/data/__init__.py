"Data sets as named tensors: containers and samplers (`core`), styled digits, cartoon faces, the 2-D toy set, real data loaders."
from .core import to_signed, from_signed, TensorData, split, Batches
from .digits import (FACTOR_NAMES, REFERENCE_STYLE, digits8, digits32, styled_digits, reference_digits,
                     unlabelled_style_pairs, render_digits, style_images, sample_styles, upsample_digits, visible_colour)
from .faces import (LANDMARK_NAMES, IDENTITY_PARAM_NAMES, FACE_FACTOR_NAMES, cartoon_faces, identity_params,
                    sample_face_factors, face_landmarks, render_faces)
from .toy import TOY_CENTERS, TOY_COLOURS, toy2d, toy2d_log_prob
from .real import (DATA_ENV, DATASETS, ARCHIVE_MAX_BYTES, ARCHIVE_MAX_MEMBERS, ARCHIVE_MAX_RATIO, DOWNLOAD_MAX_BYTES,
                   IDX_MAX_BYTES, CELEBA_FILES, CELEBA_SIZE, ChecksumError, DataFormatError, UnsafeArchiveError,
                   ArchiveLimitError, ExtractConflictError, MissingDataError, DownloadError, data_root, file_hash,
                   verify_file, download_url, extract_archive, read_idx, load_mnist, load_cifar10, load_svhn,
                   load_celeba, celeba_crop_box, celeba_landmarks_to_crop)
from .depth import JOINT_NAMES, FINGER_NAMES, hand_depth, hand_poses, hand_skeleton, render_depth, depth_rgb
